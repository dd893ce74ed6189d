"""The PyTorch trainer across processes: data-parallel replicas (gloo on the CPU) against one
process, the supervision of replicas that fail, and the SIGTERM stop a trial's end relies on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models import torch_cifar10 as tc
from models.synthetic_cifar import write_synthetic_cifar
from models.torch_parallel import EXIT_OUT_OF_MEMORY, ReplicasOutcome, run_replicas

REPO = Path(__file__).resolve().parents[2]
PER_REPLICA, STEPS, SEED = 8, 4, 5
HYPERPARAMETERS = {"learning_rate": 0.1, "momentum": 0.9, "wd": 0.0005}
#: Parameters after STEPS steps, replicas against the reference. The reference is built to do
#: the replicas' arithmetic (halving is exact, so sum-then-halve and halve-then-add round the
#: same) and here they agree exactly; the tolerance leaves room for another summation order
#: (thread counts, oneDNN kernels) and is 1000x below what a semantic slip costs (BN over the
#: global batch: ~0.1; a sum instead of a mean, a replica training on the wrong slice: larger).
TOLERANCE = 1e-6


def trainer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "OPENAMT_"))}
    return env | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def trainer_argv(data_dir: Path, model_dir: Path, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "models.torch_cifar10", "--model", "small_cnn"]
    argv += ["--batch_size", str(PER_REPLICA), "--seed", str(SEED)]
    argv += [item for name, value in HYPERPARAMETERS.items() for item in (f"--{name}", str(value))]
    return argv + ["--data-dir", str(data_dir), "--model-dir", str(model_dir), *extra]


# --- data parallel against one process -------------------------------------------------------


def reference_parameters(data_dir: Path, *, bn_per_replica: bool) -> dict[str, torch.Tensor]:
    """One process on the replicas' concatenated batches, with their semantics written out.

    Each global batch is the 2 x PER_REPLICA images both replicas draw (same seed, same
    permutation and crops); replica r trains on slice r. Batch norm normalises per device, so
    the reference runs the network on each half separately (batch statistics of that half) and
    backpropagates half of each half's mean loss: the gradient is the global batch's mean, as
    the replicas' all-reduce-and-divide makes it. torch.optim.SGD makes the update. BN running
    statistics are per device by design (averaged when the model is saved, as Gluon does), so
    they are not compared. `bn_per_replica=False` is the negative control: BN over all 16.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the replicas run (OMP_NUM_THREADS=1): the same kernels
    try:
        return _reference_parameters(data_dir, bn_per_replica=bn_per_replica)
    finally:
        torch.set_num_threads(threads)


def _reference_parameters(data_dir: Path, *, bn_per_replica: bool) -> dict[str, torch.Tensor]:
    train, _ = tc.load_data(data_dir, torch.device("cpu"))
    mean, std = tc.channel_stats(train.images)
    net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
    tc.xavier_init(net, magnitude=2.0, generator=torch.Generator().manual_seed(SEED))
    optimizer = torch.optim.SGD(
        net.parameters(),
        lr=HYPERPARAMETERS["learning_rate"],
        momentum=HYPERPARAMETERS["momentum"],
        weight_decay=HYPERPARAMETERS["wd"],
    )
    generator = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(train.labels), generator=generator)
    # contiguous: the trainer copies each batch into a fixed contiguous buffer, and the crops'
    # channels_last view would take other CPU kernels (equal to ~1e-7, not bit for bit)
    inputs = tc.random_crop_flip(train.images, order, generator).contiguous()
    labels = train.labels[order]
    global_batch = 2 * PER_REPLICA
    for step in range(STEPS):
        batch = slice(step * global_batch, (step + 1) * global_batch)
        x, y = (inputs[batch].float() - mean) / std, labels[batch]
        optimizer.zero_grad()
        if bn_per_replica:
            for half in (slice(0, PER_REPLICA), slice(PER_REPLICA, global_batch)):
                (F.cross_entropy(net(x[half]), y[half]) / 2).backward()
        else:
            F.cross_entropy(net(x), y).backward()
        optimizer.step()
    return {name: p.detach() for name, p in net.named_parameters()}


def test_two_replicas_match_one_process_on_the_concatenated_batches(tmp_path: Path) -> None:
    write_synthetic_cifar(
        dest=tmp_path / "data", train_images=2 * PER_REPLICA * STEPS, test_images=16, seed=3
    )

    completed = subprocess.run(
        trainer_argv(tmp_path / "data", tmp_path / "model", "--epochs", "1", "--replicas", "2"),
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stderr
    assert "batch=16 (8 per replica x 2)" in completed.stdout and "replicas=2" in completed.stdout
    assert len(re.findall(r"^\[Epoch 1\]", completed.stdout, re.MULTILINE)) == 1  # replica 0
    saved = torch.load(tmp_path / "model" / "model.pt")
    assert all(torch.isfinite(value).all() for value in saved.values())
    reference = reference_parameters(tmp_path / "data", bn_per_replica=True)
    control = reference_parameters(tmp_path / "data", bn_per_replica=False)
    error = max((saved[name] - value).abs().max().item() for name, value in reference.items())
    control_error = max((saved[name] - value).abs().max().item() for name, value in control.items())
    assert error <= TOLERANCE
    assert control_error > 1000 * TOLERANCE


# --- supervising replicas --------------------------------------------------------------------


def replica_out_of_memory(
    rank: int, world_size: int, rendezvous: str, argv: list[str], started_at: float | None
) -> int:
    """Replica 1 runs out of memory at once; replica 0 waits as if blocked in a collective."""
    if rank == 1:
        print("error: CUDA out of memory on cuda:1 (replica 1 of 2)", file=sys.stderr, flush=True)
        return EXIT_OUT_OF_MEMORY
    time.sleep(120)
    return 0


def test_a_failed_replica_ends_the_others_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()

    outcome = run_replicas(
        target=f"{__name__}:replica_out_of_memory", world_size=2, argv=[], started_at=None
    )

    assert time.monotonic() - started < 60  # replica 0 was killed, not waited for
    assert outcome == ReplicasOutcome(
        exit_codes=(-signal.SIGKILL, EXIT_OUT_OF_MEMORY), failed=1, stopped=False
    )
    assert tc.report_replicas(outcome, replicas=2) == EXIT_OUT_OF_MEMORY
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: CUDA out of memory in replica 1 of 2")


@pytest.mark.parametrize(
    ("codes", "failed", "status", "message"),
    [
        ((0, 0), None, 0, None),
        ((1, -9), 0, 1, "error: replica 0 of 2 ended with code 1"),
        ((0, -11), 1, 1, "error: replica 1 of 2 ended with signal SIGSEGV"),
    ],
)
def test_the_trainer_exit_status_comes_from_its_replicas(
    codes: tuple[int, ...],
    failed: int | None,
    status: int,
    message: str | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = ReplicasOutcome(exit_codes=codes, failed=failed, stopped=False)

    assert tc.report_replicas(outcome, replicas=2) == status
    err = capsys.readouterr().err.strip()
    assert (err.splitlines()[-1] if err else None) == message


# --- SIGTERM ---------------------------------------------------------------------------------


def stop_after_first_epoch(argv: list[str], *, to_group: bool) -> tuple[int, str, float]:
    """Start the trainer, SIGTERM it once it has logged an epoch, as the orchestrator ends a
    trial (the whole process group) or as a person would (the trainer's own pid). Returns the
    exit status, stdout, and the seconds from the signal to the exit."""
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        env=trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[Epoch 1]"):
                break
        signalled = time.monotonic()
        if to_group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        return process.returncode, "".join(lines) + rest, time.monotonic() - signalled
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize(
    ("replicas", "to_group"),
    [(1, True), pytest.param(2, False, marks=pytest.mark.slow)],
    ids=["one-process-group", "replicas-pid"],
)
def test_sigterm_writes_the_best_model_prints_a_footer_and_exits_promptly(
    tmp_path: Path, replicas: int, to_group: bool
) -> None:
    write_synthetic_cifar(dest=tmp_path / "data", train_images=320, test_images=32, seed=6)
    argv = trainer_argv(tmp_path / "data", tmp_path / "model", "--epochs", "1000")

    status, stdout, seconds = stop_after_first_epoch(
        [*argv, "--replicas", str(replicas)], to_group=to_group
    )

    assert status == -signal.SIGTERM, stdout  # a SIGTERM still reads as one to the orchestrator
    assert seconds < 20
    lines = stdout.strip().splitlines()
    footer = re.fullmatch(
        r"stopped: SIGTERM in epoch (\d+) after (\d+) of (\d+) steps; "
        r"best_validation_accuracy=([0-9.]+) from epoch (\d+) written to (\S+); "
        r"trial_seconds=[0-9.]+",
        lines[-2],
    )
    assert footer, lines[-2:]
    assert lines[-1].startswith("timing: ")
    assert int(footer.group(1)) > int(footer.group(5)) >= 1
    assert int(footer.group(3)) == 320 // (PER_REPLICA * replicas)
    info = json.loads((tmp_path / "model" / "model-info.json").read_text())
    assert (info["epoch"], info["validation_accuracy"]) == (
        int(footer.group(5)),
        pytest.approx(float(footer.group(4))),
    )
    assert len([line for line in lines if line.startswith("stopped:")]) == 1
