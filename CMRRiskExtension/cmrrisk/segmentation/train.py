"""Training of the cine segmentation model on ACDC, with checkpoints and resume.

``cmrrisk train-segmentation --data DIR --out MODEL_DIR --seed N`` runs :func:`train`.
Every ``checkpoint_every`` iterations the network, optimiser, iteration and random state are
saved to ``MODEL_DIR/checkpoint.pt``; running the same command again resumes from there.
At the end the model directory is written (weights, config, checksums), the validation subjects
are segmented with the full inference pipeline and ``metrics.json`` and ``MODEL_CARD.md`` are
written from what was measured.

Under ``torchrun`` (``WORLD_SIZE`` > 1) the same command trains with DistributedDataParallel
(gloo on CPU, nccl on GPU): each process draws ``batch / world size`` crops per iteration from
its own random stream (seeded by the seed, its rank and the iteration), the gradients are
averaged, and only rank 0 writes checkpoints, the log and the model directory. The global
batch and the checkpoint do not depend on the number of processes, so a run resumes with any
world size.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from .. import labels as L
from .. import modeldir
from ..datasets import list_acdc, stratified_split
from ..distributed import close as close_group
from ..distributed import DataParallel, barrier, distributed_context
from ..errors import CMRRiskError
from ..image import read_image
from .augment import FrameStore, sample_batch
from .evaluate import evaluate_acdc
from .infer import TRAINING_SLICE_ORDER, Segmenter, pick_device
from .network import DEFAULT_NETWORK, build_network
from .preprocess import labels_to_target_grid, prepare_frame

CHECKPOINT = "checkpoint.pt"

#: hyper-parameters of the cine (ACDC) model; the LGE (EMIDEC) model overrides some
DEFAULTS = {
    "iterations": 8000,
    "batch": 16,
    "crop": 128,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "warmup": 150,
    "target_spacing": 1.5,
    "context": 1,
    "n_val": 20,
    "checkpoint_every": 100,
}

LGE_OVERRIDES = {
    "iterations": 2000,
    # EMIDEC crops carry no pixel spacing: they are used as they are, declared 1 mm
    "target_spacing": 1.0,
    "n_val": 15,
}

TASKS = {
    "cine": {
        "labels": L.CINE_LABELS,
        "description": "2.5D U-Net segmentation of short-axis cine frames: LV blood pool, "
                       "LV myocardium, RV blood pool",
        "data": "ACDC training set (Bernard et al., IEEE TMI 2018)",
    },
    "lge": {
        "labels": L.LGE_LABELS,
        "description": "2.5D U-Net segmentation of short-axis LGE stacks: LV blood pool, "
                       "LV myocardium, myocardial scar, microvascular obstruction",
        "data": "EMIDEC (Lalande et al., Data 5(4):89, 2020)",
    },
}


def task_defaults(task: str) -> dict:
    hp = dict(DEFAULTS)
    if task == "lge":
        hp.update(LGE_OVERRIDES)
    return hp


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def load_store(subjects, target: float) -> FrameStore:
    """Every training frame resampled to ``target`` mm."""
    store = FrameStore()
    for s in subjects:
        for phase in ("ed", "es"):
            img = read_image(s.frame_path(phase))
            ref = read_image(s.frame_path(phase, gt=True))
            if ref.array.shape != img.array.shape:
                raise CMRRiskError(f"{s.frame_path(phase, True)}: shape {ref.array.shape} differs "
                                   f"from the image's {img.array.shape}.")
            lab = L.map_labels(ref.array, L.ACDC_TO_PROJECT)
            sx, sy, _ = img.spacing
            x = prepare_frame(img.array, (sx, sy), target)[:, 0].numpy()
            y = labels_to_target_grid(lab, (sx, sy), target, 4)
            store.add(x, y)
    return store


def load_lge_store(cases, target: float, structures) -> FrameStore:
    """EMIDEC cases as training frames; label values mapped to class indices 0..len(structures)."""
    from ..datasets import read_emidec_case

    lut = np.zeros(256, np.uint8)
    for i, v in enumerate(structures, start=1):
        lut[v] = i
    store = FrameStore()
    for c in cases:
        img, lab = read_emidec_case(c)
        if lab is None:
            raise CMRRiskError(f"{c.case}: masks missing; every training case needs its masks.")
        x = prepare_frame(img, (1.0, 1.0), target)[:, 0].numpy()
        y = labels_to_target_grid(lut[lab], (1.0, 1.0), target, len(structures) + 1)
        store.add(x, y)
    return store


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice over the foreground classes (batch Dice)."""
    ce = F.cross_entropy(logits, target)
    p = logits.softmax(1)[:, 1:]
    oh = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (p * oh).sum((0, 2, 3))
    den = p.sum((0, 2, 3)) + oh.sum((0, 2, 3))
    dice = (2 * inter + 1e-5) / (den + 1e-5)
    return ce + (1 - dice).mean()


def lr_at(it: int, total: int, base: float, warmup: int) -> float:
    if it < warmup:
        return base * (it + 1) / warmup
    p = (it - warmup) / max(1, total - warmup)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def train(data: str, out: str, seed: int = 0, device: str = "cpu", use_all: bool = False,
          threads: int | None = None, task: str = "cine", init: str | None = None,
          progress=None, val_subjects: list | None = None, **overrides) -> dict:
    """Train (or, with ``init``, fine-tune from a model directory) and write ``out``.

    ``val_subjects``: the subjects to hold out for validation (e.g. one fold of a
    cross-validation) instead of the split drawn from ``seed``. ``init`` may be a model of the
    other task with the same network: every tensor but the output layer is then taken from it.

    ``progress``: a :class:`cmrrisk.progress.Progress`, updated every 50 iterations with the
    iterations done (in a one-process run its cancel stops training there; the checkpoint
    written so far lets ``train`` resume).

    ``out`` and ``init`` are checked before any data is read (``out`` must be new, empty, a model
    directory or a folder of its own checkpoints: :func:`cmrrisk.modeldir.check_output`); a run
    that fails leaves no empty ``out`` folder behind."""
    modeldir.check_output(out)
    if init:
        modeldir.verify(modeldir.resolve(init))
    if not os.path.isdir(data):
        raise CMRRiskError(f"--data {data}: no such folder.")
    created = not os.path.exists(out)
    rank, world, _ = distributed_context(device)
    try:
        return _train(data, out, seed, device, use_all, threads, task, init, progress=progress,
                      val_subjects=val_subjects, **overrides)
    except BaseException:
        if rank == 0 and created and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)
        raise
    finally:
        close_group()


def _train(data: str, out: str, seed: int = 0, device: str = "cpu", use_all: bool = False,
           threads: int | None = None, task: str = "cine", init: str | None = None,
           progress=None, val_subjects: list | None = None, **overrides) -> dict:
    from ..progress import as_progress

    progress = as_progress(progress)
    if task not in TASKS:
        raise CMRRiskError(f"--task {task!r}: use one of {', '.join(TASKS)}.")
    spec = TASKS[task]
    hp = task_defaults(task)
    hp.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training options {sorted(unknown)}")
    rank, world, local = distributed_context(device)
    dev = pick_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local)
    if world > 1 and hp["batch"] % world:
        raise CMRRiskError(f"--batch {hp['batch']}: not divisible by the {world} training processes; give a "
                           "multiple of the world size (the batch is the total over all processes).")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    if rank == 0:
        os.makedirs(out, exist_ok=True)

    subjects = _list_subjects(task, data)
    if val_subjects is not None:
        train_subj, val_subj = _given_split(subjects, val_subjects, data, use_all)
    elif use_all:
        train_subj, val_subj = subjects, []
    else:
        if len(subjects) < hp["n_val"] + 5:
            raise CMRRiskError(f"{data}: {len(subjects)} subjects are too few for a validation "
                               f"split of {hp['n_val']}; use --all or more data.")
        train_subj, val_subj = stratified_split(subjects, hp["n_val"], seed)
    log = _log if rank == 0 else (lambda msg: None)
    log(f"{len(train_subj)} training subjects, {len(val_subj)} validation subjects")

    config = {
        "name": task,
        "task": task,
        "description": spec["description"],
        "labels": {L.SEGMENTS[v][0]: v for v in spec["labels"]},
        "network": dict(DEFAULT_NETWORK, in_channels=2 * hp["context"] + 1,
                        out_channels=len(spec["labels"]) + 1),
        "preprocessing": {
            "target_spacing": hp["target_spacing"],
            "context": hp["context"],
            "intensity": "clip to volume percentiles 0.5/99.5, scale to [0, 1]",
            "resampling": "in-plane bilinear to target_spacing mm; slices unchanged",
            "slice_order": TRAINING_SLICE_ORDER[task],
        },
        "postprocessing": ("largest 3D connected component of the LV blood pool, the RV and the "
                           "LV myocardium" if task == "cine" else
                           "largest 3D connected component of the LV blood pool and of the whole "
                           "myocardium (healthy + scar + MVO)") + "; holes filled per slice",
        "training": {
            "data": spec["data"],
            "train_subjects": [s.subject for s in train_subj],
            "val_subjects": [s.subject for s in val_subj],
            "seed": seed,
            "hyperparameters": hp,
        },
    }
    if val_subjects is not None:
        config["training"]["val_subjects_given"] = True

    t_load = time.perf_counter()
    if task == "cine":
        store = load_store(train_subj, hp["target_spacing"])
    else:
        store = load_lge_store(train_subj, hp["target_spacing"], spec["labels"])
    log(f"loaded {len(store)} training slices in {time.perf_counter() - t_load:.0f} s")

    net = build_network(config).to(dev)
    if init:
        init_dir = modeldir.resolve(init)
        init_cfg, init_state = modeldir.load(init_dir)
        new_tensors = _load_init(net, init, init_cfg, init_state, config, task)
        config["training"]["initialised_from"] = {
            "model": init_cfg.get("name", os.path.basename(init_dir)),
            "weights_sha256": modeldir.sha256(os.path.join(init_dir, modeldir.WEIGHTS)),
            "iterations_before": init_cfg.get("training", {}).get("iterations_done"),
            "train_subjects_before": init_cfg.get("training", {}).get("train_subjects"),
        }
        if init_cfg.get("task") != task:
            config["training"]["initialised_from"].update(task=init_cfg.get("task"), new_tensors=new_tensors)
            log(f"--init {init}: every tensor but {', '.join(new_tensors)} from the "
                f"{init_cfg.get('task')} model")
        if not use_all:
            leaked = set(config["training"]["initialised_from"]["train_subjects_before"] or []) & \
                {s.subject for s in val_subj}
            if leaked:
                raise CMRRiskError(f"--init {init}: that model was trained on validation subjects "
                                   f"{sorted(leaked)[:5]}; its validation would be dishonest. Use the "
                                   "same --seed as that model or --all.")
        net = net.to(dev)
    if dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    rng = np.random.default_rng(seed)
    start_it, elapsed = 0, 0.0
    ckpt_path = os.path.join(out, CHECKPOINT)
    if os.path.isfile(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck.get("hp") != hp or ck.get("seed") != seed or ck.get("train_subjects") != config["training"]["train_subjects"]:
            raise CMRRiskError(f"{ckpt_path}: checkpoint was made with other settings; "
                               "delete it or use another --out folder.")
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        start_it, elapsed = ck["iteration"], ck["elapsed"]
        if ck.get("rng") is not None and world == 1:
            rng.bit_generator.state = ck["rng"]
            torch.set_rng_state(ck["torch_rng"])
        else:  # written or read by a distributed run: the random streams restart at this iteration
            rng = np.random.default_rng([seed, start_it])
        log(f"resumed from iteration {start_it} ({elapsed / 60:.1f} min trained)"
            + (f" on {world} processes" if world > 1 else ""))
    per_rank = hp["batch"] // world
    model, parallel = net, None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        parallel = DataParallel(rank, world, "training", device=dev)
        torch.manual_seed(seed + 1000 * rank)  # per-rank seed (the weights are rank 0's, broadcast)
        model = DistributedDataParallel(net, device_ids=[local] if dev.type == "cuda" else None)

    log_path = os.path.join(out, "training_log.jsonl")
    model.train()
    t0 = time.perf_counter()
    running = []
    for it in range(start_it, hp["iterations"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(it, hp["iterations"], hp["lr"], hp["warmup"])
        if world > 1:  # this process's share of the batch, from its own stream
            x, y = sample_batch(store, np.random.default_rng([seed, rank, it]), per_rank, hp["crop"],
                                hp["context"])
        else:
            x, y = sample_batch(store, rng, hp["batch"], hp["crop"], hp["context"])
        x, y = x.to(dev), y.to(dev)
        if dev.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        done = it + 1
        if done % 50 == 0 or done == hp["iterations"]:
            secs = elapsed + time.perf_counter() - t0
            mean_loss = float(np.mean(running))
            if parallel is not None:  # the mean over all processes
                mean_loss = parallel.total(mean_loss)[0] / world
            rec = {"iteration": done, "loss": mean_loss, "lr": opt.param_groups[0]["lr"],
                   "seconds": secs}
            running = []
            if rank == 0:
                with open(log_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            log(f"it {done}/{hp['iterations']} loss {rec['loss']:.4f} "
                 f"({secs / done:.2f} s/it, {secs / 60:.1f} min)")
            if world == 1:  # a cancel on one process of several would leave the others waiting
                progress.update(done, hp["iterations"], f"iteration {done}/{hp['iterations']}")
        if rank == 0 and (done % hp["checkpoint_every"] == 0 or done == hp["iterations"]):
            secs = elapsed + time.perf_counter() - t0
            tmp = ckpt_path + ".tmp"
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(),
                        "rng": rng.bit_generator.state if world == 1 else None,
                        "torch_rng": torch.get_rng_state(), "iteration": done, "elapsed": secs,
                        "world_size": world,
                        "hp": hp, "seed": seed,
                        "train_subjects": config["training"]["train_subjects"]}, tmp)
            os.replace(tmp, ckpt_path)
    train_seconds = elapsed + time.perf_counter() - t0

    config["training"].update({
        "iterations_done": hp["iterations"],
        "train_seconds": round(train_seconds, 1),
        "hardware": _hardware(dev),
    })
    config["software"] = modeldir.software_versions()
    if parallel is not None:
        # batch-norm statistics are each process's own: take rank 0's, then check the replicas
        parallel.sync_buffers(net)
        config["training"]["distributed"] = dict(parallel.check_replicas(net), batch_per_process=per_rank)
        if rank != 0:
            barrier()  # rank 0 writes the model directory
            return {}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    metrics = _validate_and_save(out, state, config, val_subj, dev)
    barrier()
    return metrics


def _given_split(subjects: list, val_subjects: list, data: str, use_all: bool):
    """(train, val) with exactly the named validation subjects; a name not in ``data`` is refused."""
    if use_all:
        raise CMRRiskError("--val-subjects and --all: give one of them (--all trains on every subject).")
    names = {s.subject for s in subjects}
    wanted = list(dict.fromkeys(str(v).strip() for v in val_subjects if str(v).strip()))
    missing = [v for v in wanted if v not in names]
    if missing:
        raise CMRRiskError(f"--val-subjects: {data} has no subject {', '.join(repr(v) for v in missing[:5])} "
                           f"(it has {len(names)}, e.g. {', '.join(sorted(names)[:3])}).")
    if not wanted or len(names) - len(wanted) < 5:
        raise CMRRiskError(f"--val-subjects: {len(wanted)} validation subjects of {len(names)} leave too few "
                           "to train on (at least 5) or none to validate on.")
    held = set(wanted)
    return ([s for s in subjects if s.subject not in held],
            sorted((s for s in subjects if s.subject in held), key=lambda s: s.subject))


def _load_init(net, init: str, init_cfg: dict, init_state: dict, config: dict, task: str) -> list:
    """Load ``init``'s weights into ``net``. A model of the same task must have the same network;
    a model of the other task may differ only in its output layer, which stays as initialised.
    Returns the names of the tensors not taken from ``init``."""
    ours, theirs = config["network"], init_cfg.get("network") or {}
    if init_cfg.get("task") == task:
        if theirs != ours:
            raise CMRRiskError(f"--init {init}: that model's network differs from --task {task}'s "
                               f"({theirs} against {ours}); start from a model with the same network.")
        net.load_state_dict(init_state)
        return []
    if {k: v for k, v in theirs.items() if k != "out_channels"} != \
            {k: v for k, v in ours.items() if k != "out_channels"}:
        raise CMRRiskError(f"--init {init}: a {init_cfg.get('task')} model whose network differs from "
                           f"--task {task}'s in more than its output layer ({theirs} against {ours}).")
    own = net.state_dict()
    taken = {k: v for k, v in init_state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    own.update(taken)
    net.load_state_dict(own)
    return sorted(set(own) - set(taken))


def _list_subjects(task: str, data: str) -> list:
    """The training data of ``task``: ACDC subjects (cine) or EMIDEC cases (lge)."""
    if task == "cine":
        return list_acdc(data)
    from ..datasets import list_emidec

    return list_emidec(data)


def _validate_and_save(out: str, state: dict, config: dict, val_subj: list, dev: torch.device) -> dict:
    """Write the model directory, measure it on ``val_subj`` (when any) and write the metrics and
    the model card beside it; returns the metrics."""
    task = config["task"]
    modeldir.save(out, state, config)
    metrics = {}
    if val_subj:
        _log(f"evaluating on {len(val_subj)} validation subjects")
        seg = Segmenter.load(out, device=str(dev))
        if task == "cine":
            metrics = evaluate_acdc(seg, val_subj)
        else:
            from .evaluate import evaluate_emidec

            metrics = evaluate_emidec(seg, val_subj)
        metrics["split"] = ("validation (held out from training, stratified by "
                            + ("ACDC group)" if task == "cine" else "EMIDEC normal / infarct case)"))
    card = model_card(config, metrics)
    modeldir.save(out, state, config, {"metrics.json": metrics, "MODEL_CARD.md": card})
    _log(f"model written to {out}")
    return metrics


def average_models(first: str, second: str, out: str, weight: float = 0.5, data: str | None = None,
                   device: str = "cpu") -> dict:
    """Average the weights of two segmentation models of one lineage (a model and its
    fine-tune: same task, network, pre-processing and training/validation split) into ``out``:
    ``(1 - weight) * first + weight * second`` for every floating-point tensor (batch-norm
    statistics included; integer counters are taken from ``second``). Averaging two points of one
    training run is a cheap way to keep most of a fine-tune's gain while undoing part of its
    drift. With ``data`` (the training data folder) the average is measured on the validation
    subjects of the split, as ``train`` does, and the card shows the figures; returns the metrics
    ({} without ``data``)."""
    if not 0.0 <= weight <= 1.0:
        raise CMRRiskError(f"--weight {weight}: give a number between 0 and 1 (the share of the "
                           "second model).")
    modeldir.check_output(out)
    dirs = [modeldir.resolve(first), modeldir.resolve(second)]
    (cfg_a, state_a), (cfg_b, state_b) = (modeldir.load(d) for d in dirs)
    for key in ("task", "network", "labels"):
        if cfg_a.get(key) != cfg_b.get(key):
            raise CMRRiskError(f"{dirs[0]} and {dirs[1]}: their {key} differs; only models of one "
                               "task and network can be averaged.")
    pre_a, pre_b = (dict(c["preprocessing"]) for c in (cfg_a, cfg_b))
    for pre in (pre_a, pre_b):
        pre.setdefault("slice_order", TRAINING_SLICE_ORDER[cfg_a["task"]])
    if pre_a != pre_b:
        raise CMRRiskError(f"{dirs[0]} and {dirs[1]}: their pre-processing differs "
                           f"({pre_a} vs {pre_b}).")
    tr_a, tr_b = cfg_a["training"], cfg_b["training"]
    # the one exception to "same split": B is an --all fine-tune of A itself (A's training and
    # validation subjects are all B's training subjects); the average has then seen every
    # subject and, like B, has no held-out figures
    sha_a = modeldir.sha256(os.path.join(dirs[0], modeldir.WEIGHTS))
    all_of_a = sorted((tr_a.get("train_subjects") or []) + (tr_a.get("val_subjects") or []))
    all_finetune = (not tr_b.get("val_subjects") and tr_a.get("val_subjects")
                    and (tr_b.get("initialised_from") or {}).get("weights_sha256") == sha_a
                    and sorted(tr_b.get("train_subjects") or []) == all_of_a)
    for key in ("train_subjects", "val_subjects"):
        if not all_finetune and sorted(tr_a.get(key) or []) != sorted(tr_b.get(key) or []):
            raise CMRRiskError(f"{dirs[0]} and {dirs[1]}: their {key.replace('_', ' ')} differ; "
                               "an average of models trained on different splits has no honest "
                               "validation. Average models of one training run (a model and its "
                               "--init fine-tune, or a model and its --init --all fine-tune).")
    if set(state_a) != set(state_b):
        raise CMRRiskError(f"{dirs[0]} and {dirs[1]}: their weights hold different tensors.")
    state = {}
    for k, b in state_b.items():
        a = state_a[k]
        if a.shape != b.shape:
            raise CMRRiskError(f"{dirs[0]} and {dirs[1]}: tensor {k} has shapes "
                               f"{tuple(a.shape)} and {tuple(b.shape)}.")
        state[k] = ((a.float() * (1.0 - weight) + b.float() * weight).to(b.dtype)
                    if b.is_floating_point() else b.clone()).contiguous()

    config = json.loads(json.dumps(cfg_b))
    config["preprocessing"] = pre_b
    config["training"]["averaged_from"] = [
        {"model": os.path.basename(os.path.normpath(d)),
         "weights_sha256": modeldir.sha256(os.path.join(d, modeldir.WEIGHTS)),
         "iterations": c["training"].get("iterations_done"), "weight": w}
        for d, c, w in ((dirs[0], cfg_a, 1.0 - weight), (dirs[1], cfg_b, weight))]
    if all_finetune:  # A's split, kept so that the card can say which subjects A never saw
        config["training"]["averaged_from"][0]["train_subjects"] = list(tr_a["train_subjects"])
        config["training"]["averaged_from"][0]["val_subjects"] = list(tr_a["val_subjects"])
    config["software"] = modeldir.software_versions()
    val_subj = []
    names = set(config["training"].get("val_subjects") or [])
    if data and names:
        val_subj = [s for s in _list_subjects(config["task"], data) if s.subject in names]
        missing = names - {s.subject for s in val_subj}
        if missing:
            raise CMRRiskError(f"{data}: validation subjects {sorted(missing)[:5]} of the split are "
                               "not there; give the data folder the models were trained on.")
    return _validate_and_save(out, state, config, val_subj, pick_device(device))


def _hardware(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(dev)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} threads"


CITATIONS = {
    "cine": "O. Bernard, A. Lalande, C. Zotti, F. Cervenansky et al., \"Deep Learning Techniques "
            "for Automatic MRI Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem "
            "Solved?\", IEEE TMI 37(11):2514-2525, 2018, doi:10.1109/TMI.2018.2837502.",
    "lge": "A. Lalande et al., \"Emidec: A Database Usable for the Automatic Evaluation of "
           "Myocardial Infarction from Delayed-Enhancement Cardiac MRI\", Data 5(4):89, 2020.",
}


def model_card(config: dict, metrics: dict) -> str:
    """Markdown model card built only from the config and measured metrics."""
    tr = config["training"]
    hp = tr["hyperparameters"]
    init = tr.get("initialised_from") or {}
    before = init.get("train_subjects_before") or []
    lines = [
        f"# CMRRisk segmentation model `{config['name']}`",
        "",
        config["description"] + ".",
        "",
        "## Data",
        f"- {tr['data']}: {len(tr['train_subjects'])} subjects for training"
        + (" (ED and ES frames)" if config["task"] == "cine" else "")
        + (f", {len(tr['val_subjects'])} held out for validation, stratified by "
           + ("diagnostic group." if config["task"] == "cine" else "normal / infarct.")
           if tr["val_subjects"] else ": all of them, none held out (`--all`)."),
        "- Citation: " + CITATIONS[config["task"]],
        "",
        "## Recipe",
        f"- Network: MONAI BasicUNet (2D), features {config['network']['features']}, "
        f"{config['network']['in_channels']} input channels (slice and its neighbours), batch norm.",
        f"- Pre-processing: {config['preprocessing']['intensity']}; "
        f"{config['preprocessing']['resampling']} ({hp['target_spacing']} mm).",
        f"- Training: {hp['iterations']} iterations of {hp['batch']} random {hp['crop']}x{hp['crop']} "
        f"crops around the heart; AdamW lr {hp['lr']} (warm-up, cosine decay), weight decay "
        f"{hp['weight_decay']}; loss cross-entropy + soft Dice; seed {tr['seed']}.",
        "- Augmentation: rotation (any angle), scaling 0.8-1.25, flips, elastic deformation, "
        "contrast/brightness, gamma, coil shading, noise, blur, simulated low resolution.",
        f"- Post-processing: {config['postprocessing']}.",
        f"- Trained in {tr.get('train_seconds', 0) / 3600:.2f} h on {tr.get('hardware', '?')}.",
        f"- Reproduce: `cmrrisk train-segmentation --task {config['task']} --data DATA_DIR --out MODEL_DIR "
        f"--seed {tr['seed']} --iterations {hp['iterations']}"
        + (f" --lr {hp['lr']}" if hp["lr"] != task_defaults(config["task"])["lr"] else "")
        + (f" --init {init['model']}" if init.get("task") else
           " --init PREVIOUS_MODEL_DIR" if init else "")
        + (" --val-subjects " + ",".join(tr["val_subjects"]) if tr.get("val_subjects_given") else "")
        + (" --all" if not tr["val_subjects"] else "") + "`"
        + (f" (initialised from the {init['task']} model `{init['model']}` (SHA-256 "
           f"{init['weights_sha256'][:12]}…): every tensor but {', '.join(init['new_tensors'])})"
           if init.get("task") else
           f" (fine-tuned from a model trained {init['iterations_before']} iterations on "
           + ("the same training subjects" if sorted(before) == sorted(tr["train_subjects"]) else
              f"{len(before)} of these subjects" if before and set(before) <= set(tr["train_subjects"]) else
              "other subjects")
           + f", weights SHA-256 {init['weights_sha256'][:12]}…)" if init else "")
        + ".",
    ]
    if tr.get("averaged_from"):
        a, b = tr["averaged_from"]
        if a.get("val_subjects"):  # B is an --all fine-tune of A
            lines += [
                f"- Weights: the average {a['weight']:.2f} x model A + {b['weight']:.2f} x model B, "
                f"where B (recipe above, SHA-256 {b['weights_sha256'][:12]}…) was fine-tuned on all "
                f"subjects from A (SHA-256 {a['weights_sha256'][:12]}…, trained on "
                f"{len(a['train_subjects'])} subjects with {len(a['val_subjects'])} held out), "
                "batch-norm statistics included. The average has seen every subject. Reproduce: "
                f"`cmrrisk average-segmentation A_DIR B_DIR --weight {b['weight']:g} --out MODEL_DIR`."]
        else:
            lines += [
                f"- Weights: the average {a['weight']:.2f} x model A + {b['weight']:.2f} x model B of two "
                f"models of this training run (A: {a['iterations']} iterations, SHA-256 "
                f"{a['weights_sha256'][:12]}…; B, whose recipe is above: SHA-256 "
                f"{b['weights_sha256'][:12]}…), batch-norm statistics included. Reproduce: "
                f"`cmrrisk average-segmentation A_DIR B_DIR --weight {b['weight']:g} --data DATA_DIR "
                "--out MODEL_DIR`."]
    lines += [
        "",
        "## Validation" if not tr["val_subjects"] else
        "## Validation (measured by `cmrrisk train-segmentation` on the held-out subjects)"
        if not tr.get("averaged_from") else
        "## Validation (measured by `cmrrisk average-segmentation` on the held-out subjects)",
    ]
    if metrics and config["task"] == "lge":
        s = metrics["summary"]
        lines += ["", "| measure | value |", "|---|---|"]
        for k, v in s.items():
            lines.append(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |")
        lines += ["", f"Median {metrics['seconds_per_frame_median']:.2f} s per LGE stack."]
    elif metrics:
        s = metrics["summary"]
        lines += ["", "| structure | Dice ED | Dice ES | Dice mean | HD95 ED (mm) | HD95 ES (mm) |",
                  "|---|---|---|---|---|---|"]
        for lab in L.CINE_LABELS:
            name = L.SEGMENTS[lab][0]
            d = s[name]
            lines.append(f"| {name} | {d['dice_ed']:.3f} | {d['dice_es']:.3f} | {d['dice_mean']:.3f} "
                         f"| {d['hd95_mm_ed']:.1f} | {d['hd95_mm_es']:.1f} |")
        lines += ["", "| index | mean absolute error | bias (pred - ref) |", "|---|---|---|"]
        for key in ("lv_ef_pct", "rv_ef_pct", "lv_edv_ml", "lv_esv_ml", "lv_mass_g"):
            e = s[key + "_error"]
            lines.append(f"| {key} | {e['mae']:.2f} | {e['bias']:+.2f} |")
        lines += ["", f"{s['n_subjects']} subjects; median {metrics['seconds_per_frame_median']:.2f} s "
                  "per frame for inference during validation (pre- and post-processing included)."]
    elif tr.get("averaged_from") and tr["val_subjects"]:
        lines += ["", "Not measured: `cmrrisk average-segmentation` was run without `--data`."]
    else:
        lines += ["", "Trained on all subjects: no held-out validation figures for these weights"
                  + (" (the model it was fine-tuned from kept a split: its card has the figures)."
                     if before and set(before) < set(tr["train_subjects"]) else ".")]
    lines += ["", "## Intended use and limits",
              "Research use only. Trained on one public dataset (" + config["training"]["data"] + "); "
              "accuracy on other vendors, sequences or pathologies is unknown until measured. Outputs are flagged "
              "in `segment.json` when the LV is empty or not enclosed by myocardium.", ""]
    return "\n".join(lines)
