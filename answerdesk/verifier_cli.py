"""``answerdesk verifier …``: build the verifier's training pairs, train its adapter, evaluate it.

Examples::

    answerdesk verifier data --out var/verifier
    nice -n 10 answerdesk verifier train --pairs var/verifier/train.jsonl --max-minutes 50
    answerdesk verifier eval --pairs var/verifier/dev.jsonl
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retrieval.config import get_settings

verifier_app = typer.Typer(help="Train and check the answer verifier (never part of make run/test).",
                           no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


def _pairs(pairs_file: Path | None, data_dir: Path | None, part: str) -> list:  # type: ignore[type-arg]
    from retrieval.build.verifier_data import DataError, build_pairs, load_pairs, split

    try:
        if pairs_file is not None:
            return load_pairs(pairs_file)
        train, dev = split(build_pairs(data_dir or get_settings().train_data_dir))
    except DataError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    return train if part == "train" else dev


@verifier_app.command("data")
def data(
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl and dev.jsonl.")] = Path("var/verifier"),
    data_dir: Annotated[Path | None, typer.Option(help="Training data (default ../shared/data/train).")] = None,
) -> None:
    """Build the (question, text, label) pairs of the recipe, split them, print counts per language/kind."""
    from retrieval.build.verifier_data import DataError, build_pairs, counts, save_pairs, split

    try:
        train_pairs, dev_pairs = split(build_pairs(data_dir or get_settings().train_data_dir))
    except DataError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    save_pairs(train_pairs, out / "train.jsonl")
    save_pairs(dev_pairs, out / "dev.jsonl")
    table = Table("lang", "kind", "label", "train", "dev")
    train_counts, dev_counts = counts(train_pairs), counts(dev_pairs)
    for key in sorted(set(train_counts) | set(dev_counts)):
        table.add_row(key[0], key[1], str(key[2]), str(train_counts.get(key, 0)), str(dev_counts.get(key, 0)))
    console.print(table)
    console.print(f"{len(train_pairs)} train and {len(dev_pairs)} dev pairs in {out}")


@verifier_app.command("train")
def train(
    pairs: Annotated[Path | None, typer.Option(help="train.jsonl from `verifier data` (else built now).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Training data (default ../shared/data/train).")] = None,
    out: Annotated[Path | None, typer.Option(help="Adapter folder (default retrieval/verifier_adapter).")] = None,
    base: Annotated[Path | None, typer.Option(help="Base sentence-transformers folder (default: prepared e5).")] = None,
    layers: Annotated[int, typer.Option(min=1, max=12, help="Encoder layers kept.")] = 6,
    max_len: Annotated[int, typer.Option(min=16, max=512)] = 192,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    lr: Annotated[float, typer.Option(help="LoRA learning rate.")] = 4e-4,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 16,
    lora_layers: Annotated[int, typer.Option(min=0, help="LoRA on the top N layers only (0 = all).")] = 0,
    max_minutes: Annotated[float, typer.Option(help="Time budget; what is trained by then is saved.")] = 50.0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps (reproducible).")] = None,
    seed: Annotated[int, typer.Option()] = 13,
    device: Annotated[str, typer.Option(help="auto (cuda if present), cpu or cuda.")] = "auto",
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 2,
) -> None:
    """Train the LoRA adapter + head of the verifier cross-encoder."""
    from retrieval.build.verifier_train import TrainOptions
    from retrieval.build.verifier_train import train as run_training
    from retrieval.verifier_model import ADAPTER_DIR

    st_dir = base or get_settings().resolved_model_dir / "st"
    if not (st_dir / "config.json").is_file():
        errors.print(f"[red]error:[/red] no base model in {st_dir}; run `answerdesk prepare-model` first")
        raise typer.Exit(2)
    options = TrainOptions(
        st_dir=st_dir, out_dir=out or ADAPTER_DIR, layers=layers, max_len=max_len, batch_size=batch_size, lr=lr,
        lora_rank=rank, lora_layers=lora_layers, max_minutes=max_minutes, max_steps=max_steps, seed=seed,
        device=device, threads=threads,
    )
    config = run_training(_pairs(pairs, data_dir, "train"), options)
    console.print(f"adapter saved in {options.out_dir}: {config.trained}")


@verifier_app.command("eval")
def evaluate(
    pairs: Annotated[Path | None, typer.Option(help="dev.jsonl from `verifier data` (else built now).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Training data (default ../shared/data/train).")] = None,
    threads: Annotated[int, typer.Option(min=1, help="onnxruntime threads.")] = 2,
    limit: Annotated[int | None, typer.Option(help="At most this many pairs per language (a fixed sample).")] = None,
) -> None:
    """Score held-out pairs with the exported int8 verifier: AUC and accuracy per language and kind."""
    from retrieval.build.verifier_eval import evaluate_pairs, report_tables
    from retrieval.verifier import load_verifier

    settings = get_settings().model_copy(update={"verifier_threads": threads})
    verifier = load_verifier(settings)
    if verifier is None:
        errors.print("[red]error:[/red] no exported verifier; run `answerdesk prepare-model` with an adapter committed")
        raise typer.Exit(2)
    result = evaluate_pairs(verifier, _pairs(pairs, data_dir, "dev"), limit=limit)
    for table in report_tables(result):
        console.print(table)
