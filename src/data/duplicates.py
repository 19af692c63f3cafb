"""Duplicates within and across a data set's train/val/test splits: leakage that inflates test scores.

Exact duplicates share a content hash of the sample as training sees it (an image decoded and resized to
`image_size`, a table row encoded). Near duplicates (images only) are pairs whose 256-bit perceptual hashes
(pHash: the signs of the lowest 16x16 DCT frequencies of the grey image at 32x32, against their median)
differ in at most `max_distance` bits. The default 28 catches Fashion-MNIST images re-encoded as JPEG
(quality 85) and resized by 3 pixels (measured: up to 26 bits apart), while no two of the first 3,000
distinct test images are that close (4 pairs are within 32); the classic 64-bit pHash (8x8) put 175
distinct pairs of 2,000 within its usual 4 bits.
`data.duplicates`: `warn` (a warning with the counts; the run folder gets `duplicates.csv`), `error` (stop
when a validation or test sample duplicates a training sample), `drop_from_eval` (leave those validation
and test samples out, saying how many), `off` (no check).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F

from src.errors import UserError, require

log = logging.getLogger(__name__)

POLICIES = ("warn", "error", "drop_from_eval", "off")
SPLIT_ORDER = ("train", "val", "test")
HASH_SIZE, DCT_SIZE = 16, 32
HASH_BITS = HASH_SIZE * HASH_SIZE
CHUNK = 64  # rows of the pairwise Hamming-distance block (CHUNK x N x 4 uint64 at a time)


@dataclass
class Pair:
    kind: str        # "exact" or "near"
    distance: int    # differing perceptual-hash bits (0 for exact)
    split_a: str
    index_a: int     # position in split_a
    split_b: str
    index_b: int


@dataclass
class DuplicateReport:
    """The duplicate pairs found among named splits, and the samples' names for the CSV."""

    pairs: list[Pair] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    max_distance: int | None = None

    def leaked(self, split: str) -> list[int]:
        """Positions in `split` (val or test) of samples that duplicate a training sample."""
        found = {p.index_b for p in self.pairs if p.split_a == "train" and p.split_b == split}
        return sorted(found)

    def counts(self) -> Counter:
        return Counter((p.kind, p.split_a, p.split_b) for p in self.pairs)

    def summary(self) -> str:
        """'3 exact pairs (train-test 2, train-train 1) and 5 near pairs (...)'."""
        parts = []
        for kind in ("exact", "near"):
            by_splits = {f"{a}-{b}": n for (k, a, b), n in sorted(self.counts().items()) if k == kind}
            total = sum(by_splits.values())
            detail = f" ({', '.join(f'{s} {n}' for s, n in by_splits.items())})" if total else ""
            parts.append(f"{total} {kind} pair{'s' if total != 1 else ''}{detail}")
        return " and ".join(parts)

    def write_csv(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["kind", "distance", "split_a", "sample_a", "split_b", "sample_b"])
            for p in self.pairs:
                writer.writerow([p.kind, p.distance, p.split_a, self.names[p.split_a][p.index_a], p.split_b,
                                 self.names[p.split_b][p.index_b]])


def content_hashes(inputs: np.ndarray) -> list[bytes]:
    """One 128-bit hash of every sample's bytes (images, or encoded table rows)."""
    rows = np.ascontiguousarray(inputs).reshape(len(inputs), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def perceptual_hashes(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """256-bit pHashes, (N, 4) uint64, of images (N, C, H, W) of any value range."""
    grey = torch.as_tensor(np.array(images, copy=True)).float().mean(1, keepdim=True)
    small = F.interpolate(grey, size=(DCT_SIZE, DCT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    low = scipy.fft.dctn(small[:, 0].numpy(), axes=(1, 2), norm="ortho")[:, :HASH_SIZE, :HASH_SIZE]
    low = low.reshape(len(low), -1)
    median = np.median(low[:, 1:], axis=1, keepdims=True)  # the DC term says only how bright the image is
    bits = (low > median).astype(np.uint8)
    return np.packbits(bits, axis=1).view(">u8").astype(np.uint64)


def near_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for i < j whose hashes differ in at most `max_distance` bits."""
    found = []
    for start in range(0, len(hashes), CHUNK):
        block = hashes[start:start + CHUNK]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, start:]).sum(2, dtype=np.int32)
        rows, cols = np.nonzero(distance <= max_distance)
        keep = cols > rows  # the block against itself and later rows: each pair once, no self-pairs
        for r, c in zip(rows[keep].tolist(), cols[keep].tolist()):
            found.append((start + r, start + c, int(distance[r, c])))
    return found


def find_duplicates(splits: dict[str, np.ndarray], names: dict[str, list[str]], images: bool,
                    max_distance: int | None = 28) -> DuplicateReport:
    """Exact (and, for `images`, near) duplicate pairs among `splits` ({"train"|"val"|"test": inputs}),
    each pair ordered train < val < test."""
    order = [s for s in SPLIT_ORDER if s in splits and len(splits[s])]
    where = [(s, i) for s in order for i in range(len(splits[s]))]
    stacked = np.concatenate([np.asarray(splits[s]) for s in order]) if order else np.zeros((0,))
    report = DuplicateReport(names={s: list(names[s]) for s in order}, max_distance=max_distance if images else None)
    groups: dict[bytes, list[int]] = defaultdict(list)
    for position, digest in enumerate(content_hashes(stacked)):
        groups[digest].append(position)
    exact = set()
    for members in groups.values():
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1:]:
                exact.add((a, b))
                report.pairs.append(Pair("exact", 0, *where[a], *where[b]))
    if images and max_distance is not None and len(stacked):
        for a, b, distance in near_pairs(perceptual_hashes(stacked), max_distance):
            if (a, b) not in exact:
                report.pairs.append(Pair("near", distance, *where[a], *where[b]))
    return report


def check_policy(policy: str, max_distance: int | None) -> None:
    """One sentence for a `data.duplicates` or `data.duplicate_distance` that is not one of the choices."""
    require(policy in POLICIES, f"data.duplicates must be one of {', '.join(POLICIES)}, got {policy!r}.")
    require(max_distance is None or (isinstance(max_distance, int) and 0 <= max_distance < HASH_BITS),
            f"data.duplicate_distance must be an integer from 0 to {HASH_BITS - 1} (differing bits of perceptual "
            f"hashes) or null (exact duplicates only), got {max_distance!r}.")


def screen_splits(title: str, train, val, test, policy: str, max_distance: int | None, out_dir: str | Path | None):
    """Find duplicates among the three splits; warn, stop or drop per `policy` (module docstring). Returns
    (train, val, test), with leaked validation/test samples left out under `drop_from_eval`."""
    splits = {"train": train, "val": val, "test": test}
    arrays = {s: split.inputs.cpu().numpy() for s, split in splits.items()}
    names = {s: list(split.names) if split.names is not None else [str(i) for i in range(len(split))]
             for s, split in splits.items()}
    images = arrays["train"].ndim == 4
    report = find_duplicates(arrays, names, images, max_distance)
    if not report.pairs:
        log.info("%s: no duplicate samples within or across its splits.", title)
        return train, val, test
    where = ""
    if out_dir is not None:
        report.write_csv(Path(out_dir) / "duplicates.csv")
        where = f"; listed in {Path(out_dir) / 'duplicates.csv'}"
    near = "" if report.max_distance is None else \
        f", near: perceptual hashes at most {max_distance} of {HASH_BITS} bits apart"
    leaked = {s: report.leaked(s) for s in ("val", "test") if s in splits}
    told = f"{len(leaked.get('test', []))} test and {len(leaked.get('val', []))} validation sample(s) duplicate a " \
           "training sample"
    if policy == "error" and any(leaked.values()):
        raise UserError(f"{told} in {title} ({report.summary()}{near}){where}; remove them from the data, or set "
                        "data.duplicates=drop_from_eval to leave them out of evaluation (warn to go on).")
    log.warning("Duplicates in %s: %s%s; %s%s.", title, report.summary(), near, told, where)
    if policy != "drop_from_eval":
        return train, val, test
    kept = dict(splits)
    for s, positions in leaked.items():
        keep = np.setdiff1d(np.arange(len(splits[s])), positions)
        require(len(keep) > 0, f"every {s} sample of {title} duplicates a training sample; the {s} split would be "
                               "empty under data.duplicates=drop_from_eval.")
        kept[s] = splits[s].subset(torch.from_numpy(keep))
    log.warning("data.duplicates=drop_from_eval: left out %d of %d validation and %d of %d test samples of %s that "
                "duplicate a training sample.", len(leaked.get("val", [])), len(splits["val"]),
                len(leaked.get("test", [])), len(splits["test"]), title)
    return kept["train"], kept["val"], kept["test"]
