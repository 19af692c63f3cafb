"""The images of a folder in torchvision's ImageFolder layout: which sub-folders are splits and
classes, and every image file in a fixed order (`data=image_folder`, src/data/image_folder.py).

    DIR/<class>/<image>                       validation and test carved by class (stratified)
    DIR/train/<class>/<image>                 ... or given as folders: train/ plus val/ and/or test/
    DIR/val/<class>/<image>                   (valid/ and validation/ also name the validation folder);
    DIR/test/<class>/<image>                  a split that is missing is carved from train/

Class names are the class folders' names (sorted; sub-folders inside a class folder belong to it);
files whose suffix is not an image's (`src/data/image_files.py`) and hidden entries are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from src.data.image_files import IMAGE_SUFFIXES
from src.errors import require

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
LAYOUT_HELP = ("a folder with one sub-folder of images per class (DIR/<class>/<image>), or train/, val/ and test/ "
               "folders holding such class folders")


@dataclass
class FolderListing:
    """The images of a folder, in a fixed order (part, class, path): class names, files relative to
    the root, their class index and their part ("train", "val", "test", or "all" without split folders)."""

    root: Path
    classes: list[str]
    files: list[str]
    targets: list[int]
    parts: list[str]

    def paths(self) -> list[str]:
        root = str(self.root)
        return [os.path.join(root, f) for f in self.files]


def _visible_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def split_folders(root: str | Path) -> dict[str, Path]:
    """{part: folder}: {"train": ..., "val": ..., "test": ...} as present, or {"all": root}."""
    root = Path(str(root)).expanduser()
    require(root.is_dir(), f"data.root={root} is not a folder; pass data.root=DIR, {LAYOUT_HELP}.")
    dirs = _visible_dirs(root)
    found: dict[str, Path] = {}
    for name in dirs:
        part = SPLIT_FOLDERS.get(name.lower())
        if part is None:
            continue
        require(part not in found, f"{root} has two {part} folders ({found.get(part, Path()).name}/ and {name}/); "
                                   "keep one.")
        found[part] = root / name
    if not found:
        return {"all": root}
    require("train" in found, f"{root} has {'/ and '.join(p.name for p in found.values())}/ but no train/ folder; "
                              "add train/ (with one sub-folder per class), or put the class folders directly in it.")
    others = [d for d in dirs if d.lower() not in SPLIT_FOLDERS]
    require(not others, f"{root} mixes split folders (train/, ...) with other folders ({', '.join(others[:3])}); "
                        "put class folders inside train/, val/ and test/ only.")
    return found


def class_names_of(root: str | Path) -> list[str]:
    """The class names of an image folder (its class folders, or those of its train/ folder)."""
    parts = split_folders(root)
    folder = parts.get("train") or parts["all"]
    names = _visible_dirs(folder)
    require(bool(names), f"{folder} holds no class folders; data.root must be {LAYOUT_HELP}.")
    require(len(names) >= 2, f"{folder} holds one class folder ({names[0]}/), but classification needs at least two "
                             "classes; add a folder of images per class.")
    return names


def list_images(root: str | Path) -> FolderListing:
    """Every image of the folder; one sentence for a class folder without images, a stray image outside
    any class folder, or a class of val/ or test/ that train/ lacks."""
    root = Path(str(root)).expanduser()
    parts, classes = split_folders(root), class_names_of(root)
    files: list[str] = []
    targets: list[int] = []
    part_of: list[str] = []
    for part, folder in parts.items():
        present = _visible_dirs(folder)
        unknown = [c for c in present if c not in classes]
        require(not unknown, f"{folder} has class folder(s) {', '.join(unknown[:3])} that {parts.get('train', root)} "
                             "lacks; every class needs training images (add them, or remove the folder).")
        stray = [e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name)]
        require(not stray,
                f"{folder} holds images outside any class folder ({', '.join(sorted(stray)[:3])}); move them into "
                "the folder of their class.")
        for name in present:
            found = []  # paths relative to the root, with "/" between parts
            for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                where = Path(dirpath).relative_to(root).as_posix()
                found += [f"{where}/{f}" for f in sorted(filenames) if _is_image(f)]
            require(bool(found), f"the class folder {folder / name} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                                 "add images to it or remove it.")
            files += found
            targets += [classes.index(name)] * len(found)
            part_of += [part] * len(found)
    return FolderListing(root, classes, files, targets, part_of)
