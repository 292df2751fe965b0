"""The LoRA training loop: precomputed latents, checkpoints with validation, resume, final merge.

The loop runs through ``accelerate``'s ``Accelerator`` (mixed precision and its gradient scaler, gradient
accumulation, gradient sync), so ``accelerate launch`` on a machine with several GPUs trains data-parallel
with no code change: each process draws its own micro-batches, gradients are averaged, and only the main
process validates, writes checkpoints and merges. A single process (the app's training worker, the CLI)
behaves exactly as before: same draws, same steps, same LoRA.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from portrait_studio.errors import InputError
from portrait_studio.likeness import checkpoints as ck
from portrait_studio.likeness.config import TrainingConfig
from portrait_studio.likeness.dataset import LatentDataset, encode_dataset, load_training_images
from portrait_studio.likeness.failures import disk_full_error, is_disk_full, is_out_of_memory, out_of_memory_error
from portrait_studio.likeness.loss import micro_batch_loss
from portrait_studio.likeness.merge import ValidationScore, best_per_checkpoint, merge_checkpoints, merge_state_dicts
from portrait_studio.likeness.setup import (
    lora_text_encoder,
    lora_unet,
    lr_factor,
    make_accelerator,
    make_optimizer,
    pick_precision,
    release_accelerator,
    step_generator,
    trainable,
)
from portrait_studio.likeness.validation import LikenessScorer, render_validation, safe_score
from portrait_studio.media.outputs import save_png
from portrait_studio.models.manager import ModelManager
from portrait_studio.progress import CancelToken, ProgressFn, no_progress

log = logging.getLogger(__name__)
FINAL_DIR = "final"
PROCESS_SEED_STRIDE = 1_000_003  # data-parallel process k draws from seed + k * stride


@dataclass
class StepReport:
    step: int
    max_steps: int
    loss: float
    eta_seconds: float | None
    learning_rate: float


@dataclass
class CheckpointReport:
    step: int
    scores: list[float]
    best: float
    path: Path


@dataclass
class TrainingResult:
    lora_file: Path
    preview: Path
    steps: int
    best_similarity: float
    similarity_per_checkpoint: dict[int, float]
    merge_weights: dict[int, float]
    random_weights: bool
    base_model: str
    final_loss: float
    resumed_from: int | None = None
    warnings: list[str] = field(default_factory=list)


def train_lora(
    manager: ModelManager,
    dataset_dir: Path,
    job_dir: Path,
    config: TrainingConfig,
    scorer: LikenessScorer,
    progress: ProgressFn = no_progress,
    cancel: CancelToken | None = None,
    *,
    role: str = "base",
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[CheckpointReport], None] | None = None,
) -> TrainingResult:
    """Train (or resume) a likeness LoRA in ``job_dir``; return the merged final LoRA.

    Resumes from the newest complete checkpoint in ``job_dir/checkpoints``; returns at once when
    ``job_dir/final`` is already complete. Raises ``OutOfMemoryError`` / ``DiskFullError`` with advice,
    ``CancelledError`` on cancel (checkpoints are kept).
    """
    config.validate()
    job_dir = Path(job_dir)
    done = read_final(job_dir)
    if done is not None and done.steps == config.steps:
        return done
    trainer = _Trainer(manager, Path(dataset_dir), job_dir, config, scorer, progress, cancel or CancelToken(),
                       role, on_step, on_checkpoint)
    try:
        return trainer.run()
    except BaseException as exc:
        oom = is_out_of_memory(exc)
        disk = is_disk_full(exc)
        trainer.release()
        if oom:
            raise out_of_memory_error(config, manager.device.type) from exc
        if disk:
            raise disk_full_error(f"the job folder {job_dir}") from exc
        raise


class _Trainer:
    def __init__(self, manager: ModelManager, dataset_dir: Path, job_dir: Path, config: TrainingConfig,
                 scorer: LikenessScorer, progress: ProgressFn, cancel: CancelToken, role: str,
                 on_step: Callable[[StepReport], None] | None,
                 on_checkpoint: Callable[[CheckpointReport], None] | None) -> None:
        self.manager, self.dataset_dir, self.job_dir, self.config = manager, dataset_dir, job_dir, config
        self.scorer, self.progress, self.cancel, self.role = scorer, progress, cancel, role
        self.on_step, self.on_checkpoint = on_step, on_checkpoint
        self.checkpoints_dir = job_dir / "checkpoints"
        self.device = manager.device
        self.precision = pick_precision(config, self.device)
        self.accelerator = make_accelerator(config, self.device, self.precision)
        if self.accelerator.num_processes > 1:
            self.device = self.accelerator.device  # under `accelerate launch`: this process's GPU
        self.unet: torch.nn.Module | None = None
        self.text_encoder: torch.nn.Module | None = None
        self.training_modules: list[torch.nn.Module] = []  # as handed back by accelerator.prepare
        self.step_times: list[float] = []
        self.validation_seconds = 0.0

    # ---- orchestration --------------------------------------------------------------------------
    def run(self) -> TrainingResult:
        cfg = self.config
        info = self.manager.sd_info(self.role)
        if self.device.type == "cuda":
            self.manager.cache.unload_all()  # training needs the whole card (ComfyUI does the same)
        self.progress(0.0, "reading face crops")
        images = load_training_images(self.dataset_dir, cfg.resolution)
        loaders = self.manager.sd_loaders(self.role, ("vae", "text_encoder", "tokenizer"))
        with self.manager.cache.use(*loaders, loaders=loaders) as locked:
            parts = {key.split(":", 1)[1]: value for key, value in locked.items()}
            self.progress(0.0, f"encoding {len(images.images)} face crops once")
            data = encode_dataset(
                images, parts["vae"], parts["text_encoder"], parts["tokenizer"], cfg.caption_texts(),
                flip=cfg.flip, mask_loss=cfg.mask_loss, mask_background_weight=cfg.mask_background_weight,
                encode_text=not cfg.train_text_encoder,
            )
            self.unet = lora_unet(info.path, cfg, self.device, self.precision)
            if cfg.train_text_encoder:
                self.text_encoder = lora_text_encoder(info.path, cfg, self.device, self.precision)
            start_step, loss_ema, optimizer = self._prepare_optimizer()
            resumed = start_step if start_step else None
            if resumed:
                self.progress(start_step / cfg.steps, f"resuming from checkpoint at step {start_step}")
                log.info("resuming from step %d", start_step)
            loss_ema = self._loop(data, parts, info.path, optimizer, start_step, loss_ema)
        result = self._finish(info, loss_ema, resumed) if self.accelerator.is_main_process else None
        self.accelerator.wait_for_everyone()
        self.release()
        return result or read_final(self.job_dir)  # type: ignore[return-value]

    def release(self) -> None:
        self.unet = None
        self.text_encoder = None
        self.training_modules = []
        release_accelerator(self.accelerator)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _prepare_optimizer(self) -> tuple[int, float, torch.optim.Optimizer]:
        """The optimizer (resumed when a checkpoint exists), and the models and optimizer handed to the
        accelerator: it wraps them for data parallelism and mixed precision (``self.training_modules``)."""
        from peft.utils import set_peft_model_state_dict

        cfg = self.config
        groups = [{"params": trainable(self.unet), "lr": cfg.learning_rate, "base_lr": cfg.learning_rate}]
        if self.text_encoder is not None:
            groups.append({"params": trainable(self.text_encoder), "lr": cfg.text_encoder_lr,
                           "base_lr": cfg.text_encoder_lr})
        optimizer = make_optimizer(groups, cfg, self.device)
        ck.remove_stale_temps(self.checkpoints_dir)
        latest = ck.latest_resumable(self.checkpoints_dir)
        if latest is None:
            return 0, float("nan"), self._prepare(optimizer)
        state = ck.load_resume_state(latest.resume_state)
        if state.get("rank") != cfg.rank or bool(state.get("text_encoder_lora")) != cfg.train_text_encoder:
            raise InputError(
                f"Checkpoint {latest.path.name} was trained with other settings (rank {state.get('rank')}); "
                "start a new training instead of resuming this one."
            )
        set_peft_model_state_dict(self.unet, state["unet_lora"])
        if self.text_encoder is not None:
            set_peft_model_state_dict(self.text_encoder, state["text_encoder_lora"])
        optimizer.load_state_dict(state["optimizer"])
        prepared = self._prepare(optimizer)
        scaler = self.accelerator.scaler
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        return latest.step, float(state.get("loss_ema", float("nan"))), prepared

    def _prepare(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        models = [m for m in (self.unet, self.text_encoder) if m is not None]
        *self.training_modules, prepared = self.accelerator.prepare(*models, optimizer)
        return prepared

    # ---- the loop ---------------------------------------------------------------------------------
    def _loop(self, data: LatentDataset, parts: dict[str, Any], model_path: Path,
              optimizer: torch.optim.Optimizer, start_step: int, loss_ema: float) -> float:
        from diffusers import DDPMScheduler

        cfg = self.config
        accelerator = self.accelerator
        noise_scheduler = DDPMScheduler.from_pretrained(str(model_path), subfolder="scheduler")
        checkpoint_steps = set(cfg.checkpoint_steps())
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for step in range(start_step, cfg.steps):
            self.cancel.raise_if_cancelled()
            started = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr_factor(cfg, step)
            # Each data-parallel process draws its own micro-batches; process 0 draws what a single one would.
            generator = step_generator(cfg.seed + PROCESS_SEED_STRIDE * accelerator.process_index, step)
            step_loss = 0.0
            for _ in range(cfg.grad_accum):
                # accumulate(): gradients sync (and the optimizer steps) on the last micro-batch only;
                # backward() divides the loss by the accumulation steps and scales it under fp16.
                with accelerator.accumulate(*self.training_modules):
                    loss = self._micro_batch_loss(data, noise_scheduler, generator)
                    accelerator.backward(loss)
                    step_loss += float(loss.detach()) / cfg.grad_accum
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            loss_ema = step_loss if loss_ema != loss_ema else 0.9 * loss_ema + 0.1 * step_loss
            self.step_times.append(time.monotonic() - started)
            done = step + 1
            report = StepReport(done, cfg.steps, step_loss, self._eta(done), optimizer.param_groups[0]["lr"])
            self.progress(done / cfg.steps, _step_message(report))
            if self.on_step:
                self.on_step(report)
            if done in checkpoint_steps:
                if accelerator.is_main_process:
                    self._checkpoint(done, parts, optimizer, loss_ema)
                accelerator.wait_for_everyone()
        return loss_ema

    def _micro_batch_loss(self, data: LatentDataset, noise_scheduler: Any, generator: torch.Generator) -> torch.Tensor:
        unet, *text_encoder = self.training_modules  # as prepared: wrapped for data parallelism
        return micro_batch_loss(unet, text_encoder[0] if text_encoder else None, data, noise_scheduler, generator,
                                self.config, self.device, self.precision)

    def _eta(self, done: int) -> float | None:
        if not self.step_times:
            return None
        recent = self.step_times[-20:]
        remaining = self.config.steps - done
        checkpoints_left = len([s for s in self.config.checkpoint_steps() if s > done])
        return sum(recent) / len(recent) * remaining + checkpoints_left * self.validation_seconds

    # ---- checkpoints ------------------------------------------------------------------------------
    def _checkpoint(self, step: int, parts: dict[str, Any], optimizer: torch.optim.Optimizer,
                    loss_ema: float) -> None:
        cfg = self.config
        started = time.monotonic()
        self.progress(step / cfg.steps, f"step {step}: saving checkpoint and rendering validation images")
        text_encoder = self.text_encoder if self.text_encoder is not None else parts["text_encoder"]
        images = render_validation(parts, self.unet, text_encoder, self.manager.fresh_scheduler(self.role),
                                   cfg, cfg.resolution, self.precision.autocast_dtype, self.precision.weight_dtype)
        scores = [safe_score(self.scorer, image) for image in images]

        def fill(folder: Path) -> dict[str, Any]:
            te_layers = (ck.diffusers_lora_layers(self.text_encoder, cfg.alpha, cfg.rank)
                         if self.text_encoder is not None else None)
            ck.save_lora(folder, ck.diffusers_lora_layers(self.unet, cfg.alpha, cfg.rank), te_layers)
            for index, (image, score) in enumerate(zip(images, scores, strict=True)):
                save_png(image, folder / "validation" / f"{index:02d}.png",
                         {"step": step, "seed": cfg.validation_seeds[index], "similarity": score})
            state = {
                "step": step,
                "rank": cfg.rank,
                "loss_ema": loss_ema,
                "unet_lora": _lora_state(self.unet),
                "text_encoder_lora": _lora_state(self.text_encoder) if self.text_encoder is not None else {},
                "optimizer": optimizer.state_dict(),
                # The accelerator's fp16 loss scaler, so a resumed run scales as the first would have.
                "scaler": self.accelerator.scaler.state_dict() if self.accelerator.scaler is not None else {},
            }
            ck.save_resume_state(folder / ck.RESUME_STATE, state)
            return {"scores": scores, "seeds": list(cfg.validation_seeds), "loss": loss_ema,
                    "created": time.time()}

        checkpoint = ck.write_checkpoint(self.checkpoints_dir, step, fill)
        ck.drop_old_resume_states(self.checkpoints_dir, keep_step=step)
        self.validation_seconds = time.monotonic() - started
        if self.on_checkpoint:
            self.on_checkpoint(CheckpointReport(step, scores, max(scores, default=0.0), checkpoint.path))

    # ---- final merge ------------------------------------------------------------------------------
    def _finish(self, info: Any, loss_ema: float, resumed: int | None) -> TrainingResult:
        cfg = self.config
        self.progress(1.0, "merging the best checkpoints")
        checkpoints = [c for c in ck.complete_checkpoints(self.checkpoints_dir) if c.step <= cfg.steps]
        scores = [ValidationScore(c.step, i, s) for c in checkpoints for i, s in enumerate(c.scores)]
        plan = merge_checkpoints(scores, cfg.top_k)
        by_step = {c.step: c for c in checkpoints}
        merged = merge_state_dicts([(ck.read_lora(by_step[step].lora_file), w) for step, w in plan.weights.items()])
        best_image = by_step[plan.best.step].validation_image(plan.best.index)
        manifest = {
            "steps": cfg.steps,
            "merge_weights": {str(k): v for k, v in plan.weights.items()},
            "picked": [[p.step, p.index, p.score] for p in plan.picked],
            "best_similarity": plan.best.score,
            "similarity_per_checkpoint": {str(k): v for k, v in best_per_checkpoint(scores).items()},
            "random_weights": info.random_weights,
            "base_model": info.base_id,
            "final_loss": loss_ema,
            "resumed_from": resumed,
            "config": cfg.to_dict(),
        }

        def fill(folder: Path) -> None:
            ck.save_prefixed_lora(folder, merged)
            shutil.copyfile(best_image, folder / "preview.png")
            ck.write_json_atomic(folder / ck.MANIFEST, manifest)

        _write_dir_atomic(self.job_dir / FINAL_DIR, fill)
        result = read_final(self.job_dir)
        assert result is not None
        return result


def _lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The peft LoRA weights as trained (unscaled), for resuming."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, save_embedding_layers=False)
    return {key: value.detach().cpu() for key, value in state.items()}


def _write_dir_atomic(target: Path, fill: Callable[[Path], None]) -> None:
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_final(job_dir: Path) -> TrainingResult | None:
    """The finished training of ``job_dir`` (``final/manifest.json``), or None when not finished."""
    folder = Path(job_dir) / FINAL_DIR
    try:
        manifest = json.loads((folder / ck.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    lora_file = folder / ck.LORA_FILE
    if not lora_file.is_file():
        return None
    warnings = []
    if manifest.get("random_weights"):
        warnings.append("Trained on random-weight test models (tiny profile): the LoRA is not a likeness.")
    return TrainingResult(
        lora_file=lora_file,
        preview=folder / "preview.png",
        steps=int(manifest["steps"]),
        best_similarity=float(manifest["best_similarity"]),
        similarity_per_checkpoint={int(k): float(v) for k, v in manifest["similarity_per_checkpoint"].items()},
        merge_weights={int(k): float(v) for k, v in manifest["merge_weights"].items()},
        random_weights=bool(manifest.get("random_weights")),
        base_model=str(manifest.get("base_model", "")),
        final_loss=float(manifest.get("final_loss", float("nan"))),
        resumed_from=manifest.get("resumed_from"),
        warnings=warnings,
    )


def _step_message(report: StepReport) -> str:
    eta = f", about {_duration(report.eta_seconds)} left" if report.eta_seconds is not None else ""
    return f"step {report.step}/{report.max_steps}, loss {report.loss:.4f}{eta}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
