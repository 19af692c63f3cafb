"""Where a topic's figures go: PNG files in `out_dir`, and, when a training run folder is given,
images (and text) in that run's TensorBoard (`<run_dir>/tensorboard`, tags `visuals/<topic>/<name>`)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter

from src.errors import require
from src.figures.plots import save_png, to_rgb


class Output:
    """Collects what a topic draws; `close()` flushes the TensorBoard writer."""

    def __init__(self, out_dir: str | Path, topic: str, run_dir: str | Path | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.topic = topic
        self.files: list[Path] = []
        self.writer = None
        if run_dir:
            run = Path(str(run_dir)).expanduser()
            require(
                run.is_dir(),
                f"run_dir={run_dir} is not a folder; pass a training run folder such as logs/train/runs/<run>.",
            )

            self.writer = SummaryWriter(log_dir=str(run / "tensorboard"))

    def figure(self, name: str, fig: Figure) -> Path:
        """Write `<out_dir>/<name>.png` (and the TensorBoard image `visuals/<topic>/<name>`)."""
        path = save_png(fig, self.out_dir / f"{name}.png")
        self.files.append(path)
        if self.writer is not None:
            self.writer.add_image(f"visuals/{self.topic}/{name}", to_rgb(fig), dataformats="HWC")
        return path

    def text(self, name: str, markdown: str, suffix: str = ".md") -> Path:
        """Write `<out_dir>/<name><suffix>` (and the TensorBoard text `visuals/<topic>/<name>`)."""
        path = self.out_dir / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown)
        self.files.append(path)
        if self.writer is not None:
            self.writer.add_text(f"visuals/{self.topic}/{name}", markdown)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
