"""Train the verifier's LoRA adapter + head (``answerdesk verifier train``).

Reproducible: fixed seed, a fixed sampling order over the pairs of :mod:`retrieval.build.verifier_data`,
and a learning-rate schedule over ``--max-steps`` (or, without it, over the ``--max-minutes``
budget, which makes the step count depend on the machine). Whatever is trained when the budget
runs out is saved; a checkpoint is also written every ``save_every_minutes``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.build.verifier_data import SEED, Pair
from retrieval.verifier_model import (
    ADAPTER_FILE,
    PREFIXES,
    VerifierConfig,
    base_checksum,
    build_network,
    trainable_state,
)

logger = logging.getLogger(__name__)

# Sampling: a language bucket's share grows with the square root of its size (zh and en would
# otherwise drown the cross-lingual pairs); adversarial unanswerables, the rarest and most
# valuable negatives, are drawn 3x as often.
KIND_WEIGHT = {"unanswerable": 3.0}


@dataclass
class TrainOptions:
    st_dir: Path
    out_dir: Path
    layers: int = 6
    max_len: int = 192
    batch_size: int = 16
    lr: float = 4e-4
    head_lr: float = 1e-3
    lora_rank: int = 16
    lora_layers: int = 0
    warmup_steps: int = 30
    max_minutes: float = 50.0
    max_steps: int | None = None
    seed: int = SEED
    device: str = "auto"
    threads: int = 2
    save_every_minutes: float = 10.0
    show_progress: bool = True


def sampling_order(pairs: Sequence[Pair], seed: int) -> list[int]:
    """A weighted order without replacement (Efraimidis–Spirakis keys), fixed by the seed."""
    buckets = Counter(pair.lang for pair in pairs)
    weights = np.array(
        [KIND_WEIGHT.get(p.kind, 1.0) / math.sqrt(buckets[p.lang]) for p in pairs], dtype=np.float64
    )
    rng = np.random.default_rng(seed)
    keys = np.log(rng.random(len(pairs))) / weights
    return [int(i) for i in np.argsort(-keys)]


def batches(pairs: Sequence[Pair], order: Sequence[int], tokenizer: Any, batch_size: int,
            seed: int) -> Iterator[tuple[Any, Any, Any]]:
    """Tokenised batches; length-sorted within blocks of 8 batches so padding stays small."""
    import torch

    rng = random.Random(seed)
    block = batch_size * 8
    for start in range(0, len(order), block):
        chosen = [pairs[i] for i in order[start : start + block]]
        encodings = tokenizer.encode_batch([(PREFIXES[0] + p.question, PREFIXES[1] + p.text) for p in chosen])
        ranked = sorted(range(len(chosen)), key=lambda i: len(encodings[i].ids))
        groups = [ranked[i : i + batch_size] for i in range(0, len(ranked), batch_size)]
        rng.shuffle(groups)
        for group in groups:
            width = max(len(encodings[i].ids) for i in group)
            ids = torch.ones((len(group), width), dtype=torch.long)  # 1 = <pad>
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, i in enumerate(group):
                seq = encodings[i].ids
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            labels = torch.tensor([float(chosen[i].label) for i in group])
            yield ids, mask, labels


def pair_tokenizer(st_dir: Path, max_len: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(st_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_len, strategy="longest_first")
    tokenizer.no_padding()
    return tokenizer


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def save_adapter(network: Any, config: VerifierConfig, out_dir: Path) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{ADAPTER_FILE}.tmp"
    save_file(trainable_state(network), str(tmp))
    tmp.replace(out_dir / ADAPTER_FILE)
    config.save(out_dir)


def train(pairs: Sequence[Pair], options: TrainOptions) -> VerifierConfig:
    """Train on ``pairs`` and save the adapter to ``options.out_dir``; returns its config."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads)
    device = resolve_device(options.device)
    config = VerifierConfig(
        layers=options.layers, max_len=options.max_len, lora_rank=options.lora_rank,
        lora_alpha=2 * options.lora_rank, lora_layers=options.lora_layers, base_checksum=base_checksum(options.st_dir),
    )
    network = build_network(options.st_dir, config, lora=True).to(device)
    network.train()
    tokenizer = pair_tokenizer(options.st_dir, options.max_len)
    lora_params = [p for p in network.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": lora_params, "lr": options.lr}, {"params": network.head.parameters(), "lr": options.head_lr}],
        weight_decay=0.01,
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    order = sampling_order(pairs, options.seed)
    total_batches = math.ceil(len(order) / options.batch_size)
    budget_s = options.max_minutes * 60
    started = last_save = time.monotonic()
    step, seen, running = 0, 0, 0.0
    progress = tqdm(total=options.max_steps or total_batches, disable=not options.show_progress, unit="step")

    def snapshot(reason: str) -> None:
        config.trained = {
            "steps": step, "pairs_seen": seen, "minutes": round((time.monotonic() - started) / 60, 1),
            "seed": options.seed, "batch_size": options.batch_size, "lr": options.lr, "device": device,
            "train_pairs": len(pairs), "stopped": reason,
        }
        save_adapter(network, config, options.out_dir)

    stop = "data exhausted"
    for ids, mask, labels in batches(pairs, order, tokenizer, options.batch_size, options.seed):
        elapsed = time.monotonic() - started
        if options.max_steps is not None and step >= options.max_steps:
            stop = "max steps"
            break
        if elapsed >= budget_s:
            stop = "time budget"
            break
        # Warm-up, then cosine decay to 10% over the steps (or, without --max-steps, the time budget).
        done = step / options.max_steps if options.max_steps else elapsed / budget_s
        factor = min(1.0, (step + 1) / options.warmup_steps) * (0.1 + 0.45 * (1 + math.cos(math.pi * min(done, 1.0))))
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * factor
        logits = network(ids.to(device), mask.to(device))
        loss = loss_fn(logits, labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params, 1.0)
        optimizer.step()
        step += 1
        seen += len(labels)
        running = 0.98 * running + 0.02 * float(loss) if step > 1 else float(loss)
        progress.update(1)
        progress.set_postfix(loss=f"{running:.3f}", pairs=seen)
        if time.monotonic() - last_save >= options.save_every_minutes * 60:
            snapshot("checkpoint")
            last_save = time.monotonic()
    progress.close()
    network.eval()
    snapshot(stop)
    logger.info("verifier trained: %s", config.trained)
    return config
