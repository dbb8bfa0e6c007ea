"""The verifier's network: an e5 (XLM-R) encoder, truncated to N layers, mean pooling and a small head.

Shared by the trainer (LoRA on the encoder) and the export (LoRA merged, then ONNX). The adapter
folder holds ``adapter.safetensors`` (LoRA weights + head) and ``verifier.json`` (this config).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ADAPTER_DIR = Path(__file__).with_name("verifier_adapter")
ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "verifier.json"
PREFIXES = ("query: ", "passage: ")
LORA_TARGETS = ["query", "key", "value", "dense"]


@dataclass
class VerifierConfig:
    """What the export needs to rebuild the trained network."""

    layers: int = 6
    max_len: int = 192
    lora_rank: int = 16
    lora_alpha: int = 32
    # LoRA only on the top N layers (0 = all): backward then stops there, ~2x cheaper on a CPU.
    lora_layers: int = 0
    base_checksum: str = ""  # sha256 of the base weights' source (the prepared model's READY)
    trained: dict[str, Any] = field(default_factory=dict)  # steps, pairs, minutes, seed, ...

    def save(self, folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> VerifierConfig:
        return cls(**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))


def has_adapter(folder: Path = ADAPTER_DIR) -> bool:
    return (folder / ADAPTER_FILE).is_file() and (folder / CONFIG_FILE).is_file()


def base_checksum(st_dir: Path) -> str:
    """The base model's identity: its source checksum from READY, else a hash of its weights."""
    ready = st_dir.parent / "READY"
    try:
        info = json.loads(ready.read_text(encoding="utf-8"))
        return str(info["source_sha256"])
    except (OSError, ValueError, KeyError):
        digest = hashlib.sha256()
        with (st_dir / "model.safetensors").open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def adapter_checksum(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in (ADAPTER_FILE, CONFIG_FILE):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def build_network(st_dir: Path, config: VerifierConfig, lora: bool) -> Any:
    """The cross-encoder as a torch module: ``forward(input_ids, attention_mask) -> logits``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import XLMRobertaModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # the dropped layers and pooler are intended, not worth a report
    try:
        encoder: Any = XLMRobertaModel.from_pretrained(
            str(st_dir), num_hidden_layers=config.layers, add_pooling_layer=False, attn_implementation="eager"
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if lora:
        top = config.lora_layers or config.layers
        lora_config = LoraConfig(
            r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.05, target_modules=LORA_TARGETS,
            layers_to_transform=list(range(config.layers - top, config.layers)), layers_pattern="layer",
        )
        encoder = get_peft_model(encoder, lora_config)
    hidden = int(encoder.config.hidden_size)

    class CrossEncoder(torch.nn.Module):
        """Mean-pooled token states (how e5 was trained to pool) → dense/tanh → one logit."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Sequential(
                torch.nn.Dropout(0.1), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
            )

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)  # type: ignore[no-any-return]

    return CrossEncoder()


def trainable_state(network: Any) -> dict[str, Any]:
    """LoRA weights + head: what the repository carries."""
    from peft import get_peft_model_state_dict

    state = {f"lora.{k}": v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(network.encoder).items()}
    state.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in network.head.state_dict().items()})
    return state


def load_trained(st_dir: Path, folder: Path, merge: bool) -> tuple[Any, VerifierConfig]:
    """The network with the adapter of ``folder`` loaded (and merged into the base weights if ``merge``)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    config = VerifierConfig.load(folder)
    network = build_network(st_dir, config, lora=True)
    state = load_file(str(folder / ADAPTER_FILE))
    set_peft_model_state_dict(network.encoder, {k[5:]: v for k, v in state.items() if k.startswith("lora.")})
    network.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
    if merge:
        network.encoder = network.encoder.merge_and_unload()
    network.eval()
    return network, config
