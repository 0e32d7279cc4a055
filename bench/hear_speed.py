"""Timestamp embeddings through the HEAR API: passt.inference.hear against hear21passt, same
weights.

Both get PaSST-S with the same random weights (hear21passt's own model, pretrained off; its
state_dict loaded into ours from a file) and the same seeded noise clips; each row times
``get_timestamp_embeddings`` on ``batch`` clips of ``seconds``, the two implementations taking
turns in every repeat, after a warm-up. The table (medians, the speed-up, and the largest
difference between their embeddings) is rewritten after every row, so a stopped run keeps
what it measured; the raw times go to a CSV beside it, to which ``--append`` adds rows (a
row measured again replaces the old one):

    OMP_NUM_THREADS=1 python bench/hear_speed.py --device cpu --threads 1 \
        [--seconds 10 60] [--batch 1 8] [--repeats 3] [--max-batch 64] [--out reports/hear] \
        [--append]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import torch

import passt.inference.hear as hear
from passt.measure.environment import capture
from passt.utils.atomic import write_text_atomic
from passt.utils.device import resolve_device, synchronize
from passt.utils.tables import csv_text, markdown_table, record_rows


@dataclass
class Row:
    seconds: float
    batch: int
    windows: int  # per clip
    official: list[float]
    ours: list[float]
    max_abs_diff: float

    def cells(self) -> list[str]:
        off, ours = statistics.median(self.official), statistics.median(self.ours)
        return [f"{self.seconds:g}", str(self.batch), str(self.windows), f"{off:.2f}",
                f"{ours:.2f}", f"{off / ours:.2f}x", str(len(self.ours)),
                f"{self.max_abs_diff:.1e}"]

    def to_csv(self) -> dict[str, str]:
        return {"seconds": str(self.seconds), "batch": str(self.batch),
                "windows": str(self.windows), "max_abs_diff": str(self.max_abs_diff),
                "official": ";".join(f"{t:.4f}" for t in self.official),
                "ours": ";".join(f"{t:.4f}" for t in self.ours)}

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> Row:
        return cls(float(row["seconds"]), int(row["batch"]), int(row["windows"]),
                   [float(t) for t in row["official"].split(";")],
                   [float(t) for t in row["ours"].split(";")], float(row["max_abs_diff"]))


HEADER = ["clip (s)", "batch", "windows/clip", "hear21passt (s)", "passt.inference.hear (s)",
          "speed-up", "repeats", "max abs diff"]


def official_wrapper(device: torch.device) -> torch.nn.Module:
    """hear21passt's HEAR wrapper of PaSST-S, as its ``get_basic_model`` builds it, random
    weights (no download)."""
    from hear21passt.models.passt import get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024,
                         freqm=48, timem=192, htk=False, fmin=0.0, fmax=None, norm=1,
                         fmin_aug_range=10, fmax_aug_range=2000)
    net = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False)
    return PasstBasicWrapper(mel=mel, net=net, mode="all").to(device).eval()


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - start, out


def measure(seconds: float, batch: int, repeats: int, official: torch.nn.Module,
            ours: hear.HearModel, device: torch.device) -> Row:
    from hear21passt.base import get_timestamp_embeddings

    gen = torch.Generator().manual_seed(int(seconds * 1000) + batch)
    audio = (0.1 * torch.randn(batch, round(seconds * ours.sample_rate), generator=gen))
    row = Row(seconds, batch, 0, [], [], 0.0)
    for _ in range(repeats):
        t_off, (ref, _) = timed(lambda: get_timestamp_embeddings(audio, official), device)
        t_ours, (got, _) = timed(lambda: hear.get_timestamp_embeddings(audio, ours), device)
        row.official.append(t_off)
        row.ours.append(t_ours)
        row.windows = got.shape[1]
        row.max_abs_diff = max(row.max_abs_diff, (got.cpu() - ref.cpu()).abs().max().item())
    return row


def write(rows: list[Row], args: argparse.Namespace, device: torch.device, out: Path) -> None:
    """The table (markdown) and the raw times (CSV), each replaced in one step."""
    rows = sorted(rows, key=lambda r: (r.seconds, r.batch))
    columns = list(rows[0].to_csv())
    write_text_atomic(out.with_suffix(".csv"),
                      csv_text(columns, record_rows([r.to_csv() for r in rows], columns)))
    write_text_atomic(out, render(rows, args, device))


def render(rows: list[Row], args: argparse.Namespace, device: torch.device) -> str:
    env = capture(None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else env.cpu_model
    lines = [
        "# Timestamp embeddings: passt.inference.hear against hear21passt",
        "",
        f"- device: {device.type} ({name}); torch threads: {torch.get_num_threads()}; "
        f"dtype: float32; {env.cpu_count} logical CPUs, load average {env.load_avg} at the "
        "end (the machine is shared)",
        f"- PaSST-S, mode all (1295 values), 160 ms windows every 50 ms; passt.inference.hear "
        f"max_batch {args.max_batch}; hear21passt {version('hear21passt')}, torch "
        f"{torch.__version__}, Python {platform.python_version()}",
        f"- seconds: median over the repeats of one `get_timestamp_embeddings` call on "
        f"`batch` clips (the two take turns, after a warm-up); measured "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "- command: `OMP_NUM_THREADS=1 python bench/hear_speed.py " + " ".join(_argv(args))
        + "` (of the last rows added; raw times per repeat in the CSV beside this file)",
        "",
    ]
    return "\n".join(lines) + "\n" + markdown_table(HEADER, [row.cells() for row in rows])


def _argv(args: argparse.Namespace) -> list[str]:
    return ["--device", args.device, "--threads", str(args.threads), "--seconds",
            *map(str, args.seconds), "--batch", *map(str, args.batch), "--repeats",
            str(args.repeats), "--max-batch", str(args.max_batch)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batch", type=int, default=hear.HearConfig.max_batch)
    p.add_argument("--out", type=Path, default=Path("reports/hear"))
    p.add_argument("--append", action="store_true",
                   help="keep the rows of the device's table that this run does not measure")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hear21passt prints its model and warns on shapes
        official = official_wrapper(device)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "passt-s.pt"
            torch.save(official.net.state_dict(), path)
            ours = hear.load_model(path, "passt-s", mode="all", device=device,
                                   max_batch=args.max_batch)
        out = args.out / f"speed-{device.type}.md"
        args.out.mkdir(parents=True, exist_ok=True)
        warm = torch.zeros(1, ours.sample_rate)
        from hear21passt.base import get_timestamp_embeddings
        get_timestamp_embeddings(warm, official)
        hear.get_timestamp_embeddings(warm, ours)
        rows: list[Row] = []
        if args.append and out.with_suffix(".csv").exists():
            with open(out.with_suffix(".csv"), newline="") as f:
                rows = [Row.from_csv(r) for r in csv.DictReader(f)]
        for seconds in args.seconds:
            for batch in args.batch:
                row = measure(seconds, batch, args.repeats, official, ours, device)
                rows = [r for r in rows if (r.seconds, r.batch) != (seconds, batch)] + [row]
                write(rows, args, device, out)
    print(out.read_text())


if __name__ == "__main__":
    main()
