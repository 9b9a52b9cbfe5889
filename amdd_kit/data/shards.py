"""Shard files of an encoded clip store: append-only logs of per-video records.

A store with ``frame_codec`` ``png`` or ``jpeg`` keeps its frames in a few large files
``STORE/frames-00000.bin, frames-00001.bin, ...`` (a new one starts when the current one passes
:data:`SHARD_BYTES`). Each file is a sequence of self-describing records, one per video::

    b"AMDDREC1" | header length (uint32 little-endian) | header (UTF-8 JSON) | payload

    header  = {"vid", "n_clips" K, "sizes" [K*T] encoded frame sizes, "mels" [K, n_mels, S],
               "starts" [K] seconds, "info" {...}, "payload" bytes, "crc32" of the payload}
    payload = mels float16 (C order, K*n_mels*S*2 bytes), then the K*T encoded frames

Only one process (the one running ``preprocess_dataset`` or ``pack``) appends. Records are
written with plain sequential writes, so a ``kill -9`` can only leave a *prefix* of the last
record; :class:`ShardWriter` truncates such a torn tail (and a last record whose CRC fails) when
it opens, and the index (``frames_index.npy``) is always rebuilt from the records. The records
are therefore the one copy of a finished video: the ``_work/`` item is deleted once its record
is in a shard, which keeps the disk used by preprocessing at about one store.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

MAGIC = b"AMDDREC1"
_HEAD = struct.Struct("<8sI")
#: A new shard file starts once the current one holds at least this many bytes.
SHARD_BYTES = 1 << 30


def shard_name(i: int) -> str:
    """File name of shard ``i``: ``frames-00000.bin``."""
    return f"frames-{i:05d}.bin"


def shard_paths(store: str | Path) -> list[Path]:
    """The shard files of a store, in order."""
    return sorted(Path(store).glob("frames-[0-9][0-9][0-9][0-9][0-9].bin"))


@dataclass
class Record:
    """Where one video's record lies and what it holds (its header).

    Attributes:
        shard: shard number; offset: byte offset of the payload in that shard.
        header: the record header (see module docstring).
    """

    shard: int
    offset: int
    header: dict
    begin: int = 0  # byte offset of the record (its magic) in the shard

    @property
    def mel_bytes(self) -> int:
        return int(np.prod(self.header["mels"])) * 2

    def frame_offsets(self) -> np.ndarray:
        """int64 ``[K*T]`` byte offsets (in the shard) of the encoded frames."""
        sizes = np.asarray(self.header["sizes"], dtype=np.int64)
        return self.offset + self.mel_bytes + np.concatenate([[0], np.cumsum(sizes)[:-1]])


def _iter_records(path: Path, shard: int) -> Iterator[tuple[Record, int]]:
    """Complete records of one shard and the byte offset where each ends (stops at a torn one)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos = 0
        while pos + _HEAD.size <= size:
            f.seek(pos)
            magic, hlen = _HEAD.unpack(f.read(_HEAD.size))
            if magic != MAGIC or pos + _HEAD.size + hlen > size:
                return
            try:
                header = json.loads(f.read(hlen).decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                return
            start = pos + _HEAD.size + hlen
            end = start + int(header["payload"])
            if end > size:
                return
            yield Record(shard, start, header, pos), end
            pos = end


def scan(store: str | Path) -> dict[str, Record]:
    """``{video_id: Record}`` of every complete record in the store's shards (the last copy of a
    video wins; there is one unless a shard was edited by hand)."""
    out: dict[str, Record] = {}
    for p in shard_paths(store):
        i = int(p.stem.split("-")[1])
        for rec, _ in _iter_records(p, i):
            out[rec.header["vid"]] = rec
    return out


def _crc_ok(path: Path, rec: Record) -> bool:
    with open(path, "rb") as f:
        f.seek(rec.offset)
        return zlib.crc32(f.read(int(rec.header["payload"]))) == rec.header["crc32"]


class ShardWriter:
    """Appends video records to the shards of ``store``; resumes a store a crash left behind.

    On opening, every shard is cut back to its last complete record, and the last record of the
    last shard is dropped too when its CRC does not match.
    ``writer.records`` is ``{video_id: Record}`` of what the shards hold.
    """

    def __init__(self, store: str | Path, shard_bytes: int | None = None):
        self.store = Path(store)
        self.shard_bytes = int(shard_bytes or SHARD_BYTES)
        self.records: dict[str, Record] = {}
        paths = shard_paths(self.store)
        self._shard, self._end = 0, 0
        for k, p in enumerate(paths):
            i = int(p.stem.split("-")[1])
            last, end = None, 0
            for rec, e in _iter_records(p, i):
                self.records[rec.header["vid"]] = rec
                last, end = rec, e
            if last is not None and k == len(paths) - 1 and not _crc_ok(p, last):
                del self.records[last.header["vid"]]
                end = last.begin
            if end < p.stat().st_size:
                with open(p, "r+b") as f:
                    f.truncate(end)
            self._shard, self._end = i, end

    def __contains__(self, vid: str) -> bool:
        return vid in self.records

    def append(self, vid: str, frames_enc: list[bytes], mels: np.ndarray, starts: np.ndarray,
               info: dict) -> Record:
        """Write one video's record: ``frames_enc`` its ``K*T`` encoded frames (clip-major),
        ``mels`` float16 ``[K, n_mels, S]``, ``starts`` ``[K]`` seconds."""
        if vid in self.records:
            return self.records[vid]
        if self._end >= self.shard_bytes:
            self._shard, self._end = self._shard + 1, 0
        mel_b = np.ascontiguousarray(mels, dtype=np.float16).tobytes()
        payload = b"".join([mel_b, *frames_enc])
        header = {"vid": vid, "n_clips": int(len(starts)), "sizes": [len(b) for b in frames_enc],
                  "mels": list(np.shape(mels)), "starts": [float(s) for s in starts],
                  "info": info, "payload": len(payload), "crc32": zlib.crc32(payload)}
        hb = json.dumps(header).encode()
        path = self.store / shard_name(self._shard)
        with open(path, "ab") as f:
            f.write(_HEAD.pack(MAGIC, len(hb)) + hb)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        start = self._end + _HEAD.size + len(hb)
        rec = Record(self._shard, start, header, self._end)
        self._end = start + len(payload)
        self.records[vid] = rec
        return rec


def read_clips(store: str | Path, rec: Record) -> dict[str, np.ndarray]:
    """One record's clips: ``mels`` float16 ``[K, n_mels, S]`` (read from the shard), ``starts``
    ``[K]`` seconds and ``index`` int64 ``[K, T, 3]``: shard, byte offset and size of each encoded
    frame (what ``frames_index.npy`` holds)."""
    with open(Path(store) / shard_name(rec.shard), "rb") as f:
        f.seek(rec.offset)
        buf = f.read(rec.mel_bytes)
    sizes = np.asarray(rec.header["sizes"], dtype=np.int64)
    index = np.stack([np.full_like(sizes, rec.shard), rec.frame_offsets(), sizes], axis=-1)
    return {"mels": np.frombuffer(buf, dtype=np.float16).reshape(rec.header["mels"]).copy(),
            "starts": np.asarray(rec.header["starts"]),
            "index": index.reshape(int(rec.header["n_clips"]), -1, 3)}


__all__ = ["SHARD_BYTES", "MAGIC", "Record", "ShardWriter", "scan", "shard_name",
           "shard_paths", "read_clips"]
