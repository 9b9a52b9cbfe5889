"""What a student clicks in a notebook: the clip browser (``ui.browse``) and the embedding explorer
(``ui.explorer``). Built on ``data`` and ``viz``; nothing below imports from here."""
