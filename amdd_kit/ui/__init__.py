"""What a student clicks in a notebook: the clip browser (``ui.browse``) and the embedding explorer
(``ui.explorer``, assembled from ``ui.embedding_map``, ``ui.clip_view``, ``ui.your_video`` and
``ui.plotly_widgets``). Built on ``data`` and ``viz``; nothing below imports from here."""
