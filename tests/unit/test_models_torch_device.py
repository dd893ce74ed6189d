"""The PyTorch trainer's device choices, taken on the CPU with an injected GPU: precision by
compute capability, the packed trial's share and memory cap, TF32, and the out-of-memory
report the orchestrator reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from models import torch_cifar10 as tc
from models.synthetic_cifar import write_synthetic_cifar
from models.torch_device import (
    DeviceError,
    GpuShare,
    Hardware,
    Precision,
    apply_backends,
    choose_precision,
    parse_gpu_share,
    plan_backends,
)
from models.torch_parallel import EXIT_OUT_OF_MEMORY, StopRequest

CPU = torch.device("cpu")


def gpu(capability: tuple[int, int] | None, name: str = "injected GPU") -> Hardware:
    """A GPU as the choices see it; the device stays the CPU, so training still runs here."""
    return Hardware(device=CPU, name=name, capability=capability, total_memory=16 << 30)


def cuda(capability: tuple[int, int]) -> Hardware:
    """For the plans only (nothing is applied): a device that is a GPU."""
    return Hardware(
        device=torch.device("cuda", 0), name="planned", capability=capability, total_memory=None
    )


@pytest.fixture(autouse=True)
def torch_backends_restored() -> Iterator[None]:
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
    )
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.backends.cuda.matmul.fp32_precision = saved[1]
    torch.backends.cudnn.conv.fp32_precision = saved[2]


# --- precision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        (None, Precision.FP32),  # the CPU
        ((6, 1), Precision.FP32),  # Pascal: no fp16 tensor cores
        ((7, 0), Precision.FP16),  # V100, the p3 nodes
        ((7, 5), Precision.FP16),  # T4
        ((8, 0), Precision.BF16),  # A100
        ((9, 0), Precision.BF16),  # H100, H200
    ],
)
def test_auto_precision_follows_the_compute_capability(
    capability: tuple[int, int] | None, expected: Precision
) -> None:
    choice = choose_precision(Precision.AUTO, gpu(capability))

    assert choice.precision is expected
    assert choice.loss_scaling is (expected is Precision.FP16)
    assert choice.reason.startswith("auto: ")
    assert (
        choice.autocast_dtype
        == {
            Precision.FP32: None,
            Precision.FP16: torch.float16,
            Precision.BF16: torch.bfloat16,
        }[expected]
    )


def test_an_explicit_precision_is_kept_and_bf16_on_volta_is_flagged() -> None:
    for precision in (Precision.FP32, Precision.FP16, Precision.BF16):
        assert choose_precision(precision, gpu((9, 0))).precision is precision
    volta = choose_precision(Precision.BF16, gpu((7, 0)))
    assert volta.precision is Precision.BF16 and "no bf16 tensor cores" in volta.reason


def test_fp32_means_ieee_fp32_and_the_rest_allow_tf32() -> None:
    for precision, expected in ((Precision.FP32, "ieee"), (Precision.BF16, "tf32")):
        choice = choose_precision(precision, cuda((9, 0)))
        plan = plan_backends(
            hardware=cuda((9, 0)), choice=choice, share=GpuShare(share=1), deterministic=False
        )
        apply_backends(plan, CPU)  # only process-wide flags: nothing touches a GPU

        assert plan.tf32 is (expected == "tf32")
        assert torch.backends.cuda.matmul.fp32_precision == expected
        assert torch.backends.cudnn.conv.fp32_precision == expected


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar(dest=directory, train_images=96, test_images=32, seed=4)
    return directory


def settings_for(args: list[str], **environ: str) -> tc.Settings:
    return tc.resolve_settings(tc.build_parser().parse_args(args), environ)


QUICK = ["--model", "small_cnn", "--batch_size", "16", "--learning_rate", "0.05", "--epochs", "1"]


def test_a_volta_trial_trains_in_fp16_with_loss_scaling_and_says_so(
    synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The p3 nodes' branch, taken on the CPU: auto precision with compute capability 7.0."""
    settings = settings_for([*QUICK, "--data-dir", str(synthetic_dir)])

    result = tc.train(settings, hardware=gpu((7, 0), name="Tesla V100-SXM2-16GB"))

    log = capsys.readouterr().out
    assert "(Tesla V100-SXM2-16GB)" in log
    assert "precision=fp16 (auto: compute capability 7.0 has fp16 but no bf16" in log
    assert "loss_scaling=True" in log
    assert result.best_accuracy is not None and result.best_accuracy > 0.2


# --- a packed trial's share ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "environ", "share", "count"),
    [
        (None, {}, 0.0, 0),
        (None, {"SM_NUM_GPUS": "4"}, 4.0, 4),
        (None, {"OPENAMT_NUM_GPUS": "0.25", "SM_NUM_GPUS": "1"}, 0.25, 1),
        (None, {"OPENAMT_NUM_GPUS": "0.5"}, 0.5, 1),
        ("0.125", {"OPENAMT_NUM_GPUS": "0.25", "SM_NUM_GPUS": "1"}, 0.125, 1),
        ("2", {"SM_NUM_GPUS": "1"}, 2.0, 2),
    ],
)
def test_the_exact_share_comes_from_the_flag_then_openamt_then_sagemaker(
    flag: str | None, environ: dict[str, str], share: float, count: int
) -> None:
    parsed = parse_gpu_share(flag=flag, environ=environ)

    assert (parsed.share, parsed.count) == (share, count)


@pytest.mark.parametrize(
    ("flag", "environ", "message"),
    [
        (None, {"OPENAMT_NUM_GPUS": "0.25", "SM_NUM_GPUS": "2"}, "SM_NUM_GPUS: '2' disagrees"),
        (None, {"SM_NUM_GPUS": "-1"}, "SM_NUM_GPUS: '-1'; must be >= 0"),
        (None, {"OPENAMT_NUM_GPUS": "lots"}, "OPENAMT_NUM_GPUS: 'lots' is not a number"),
        ("2.5", {}, "--num-gpus: '2.5'; more than one GPU must be a whole number"),
    ],
)
def test_a_bad_share_names_the_variable_and_the_rule(
    flag: str | None, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(DeviceError, match=message.replace("(", r"\(")):
        parse_gpu_share(flag=flag, environ=environ)


def test_a_packed_trial_caps_its_memory_and_does_not_autotune() -> None:
    """Four trials on one GPU: each may use a quarter of its memory (less the CUDA context's
    allowance), and cuDNN's autotuner, which would time kernels against the neighbours, is off."""

    def plan(share: float, deterministic: bool = False):
        return plan_backends(
            hardware=cuda((9, 0)),
            choice=choose_precision(Precision.AUTO, cuda((9, 0))),
            share=GpuShare(share=share),
            deterministic=deterministic,
        )

    packed, whole, two = plan(0.25), plan(1.0), plan(2.0)

    assert packed.memory_fraction == pytest.approx(0.25 * 0.95)
    assert not packed.cudnn_benchmark
    assert whole.memory_fraction is None and whole.cudnn_benchmark
    assert two.memory_fraction is None and two.cudnn_benchmark
    assert not plan(1.0, deterministic=True).cudnn_benchmark
    assert "memory_fraction=0.2375" in packed.describe()
    on_cpu = plan_backends(
        hardware=gpu(None),
        choice=choose_precision(Precision.AUTO, gpu(None)),
        share=GpuShare(share=0.25),
        deterministic=False,
    )
    assert on_cpu.memory_fraction is None and not on_cpu.cudnn_benchmark


# --- out of memory ---------------------------------------------------------------------------


class OutOfMemoryCapture:
    """A GPU that runs out of memory while the trainer captures its graphs (a real capture
    raises this torch.OutOfMemoryError); the test double for a GPU we do not have."""

    def __init__(self, message: str) -> None:
        self.message = message

    def warm_up(self, run: Callable[[], None]) -> None:
        raise torch.OutOfMemoryError(self.message)

    def capture(self, phase: Callable[[], None]) -> Callable[[], None]:
        raise AssertionError("warm-up comes first")


def test_out_of_memory_is_the_last_line_of_stderr_and_a_failure(
    synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The orchestrator reads "CUDA out of memory" in the stderr tail as the trial's reason, so
    the searcher can tell a trial too big for its share from bad hyperparameters."""
    message = (
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 15.77 GiB"
        " of which 1.20 GiB is free.\nOf the allocated memory 12.1 GiB is allocated by PyTorch"
    )
    settings = settings_for([*QUICK, "--data-dir", str(synthetic_dir)])

    status = tc.run_trial(settings, stop=StopRequest(), capture=OutOfMemoryCapture(message))

    assert status == EXIT_OUT_OF_MEMORY != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: CUDA out of memory on cuda:0 (GPU share 0, batch_size 16")
    assert "Tried to allocate 2.00 GiB" in last and "Of the allocated" not in last
    assert "resources_per_trial.gpu" in last
