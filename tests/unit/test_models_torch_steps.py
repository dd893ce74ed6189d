"""The PyTorch trainer's capturable step: flat SGD, fp16 loss scaling, the graph branch of
train() on the CPU, channels_last, evaluation."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from models import torch_cifar10 as tc
from models import torch_steps as ts
from models.synthetic_cifar import write_synthetic_cifar
from models.torch_device import EagerCapture, LossScaler
from models.torch_parallel import Collective

CPU = torch.device("cpu")
QUICK = ["--model", "small_cnn", "--batch_size", "16", "--learning_rate", "0.05"]


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synthetic")
    write_synthetic_cifar(dest=directory, train_images=160, test_images=40, seed=2)
    return directory


@pytest.fixture(autouse=True)
def torch_backends_restored() -> Iterator[None]:
    """train() sets process-wide backend flags (its own process is its to set); put them back."""
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
        torch.get_num_threads(),
    )
    yield
    torch.backends.cudnn.benchmark = saved[0]
    torch.backends.cuda.matmul.fp32_precision = saved[1]
    torch.backends.cudnn.conv.fp32_precision = saved[2]
    torch.set_num_threads(saved[3])


def settings_for(args: list[str], **environ: str) -> tc.Settings:
    return tc.resolve_settings(tc.build_parser().parse_args(args), environ)


def small_net(seed: int, memory_format: torch.memory_format = torch.contiguous_format):
    net = tc.build_network(tc.Architecture.SMALL_CNN, classes=10, stem=tc.Stem.IMAGENET)
    tc.xavier_init(net, magnitude=2.0, generator=torch.Generator().manual_seed(seed))
    return net.to(memory_format=memory_format)


def train_step(net: torch.nn.Module, optimizer: ts.SGD, **options: object) -> ts.TrainStep:
    defaults = {
        "scaler": None,
        "replicas": 1,
        "batch_shape": (8, 3, 32, 32),
        "mean": torch.full((1, 3, 1, 1), 100.0),
        "std": torch.full((1, 3, 1, 1), 50.0),
        "autocast_dtype": None,
        "memory_format": torch.contiguous_format,
    }
    return ts.TrainStep(net=net, optimizer=optimizer, **(defaults | options))


# --- flat SGD --------------------------------------------------------------------------------


def test_sgd_matches_torch_optim_sgd() -> None:
    torch.manual_seed(0)
    ours_net, reference_net = small_net(0), small_net(0)
    ours = ts.SGD(net=ours_net, lr=0.1, momentum=0.9, wd=0.01)
    reference = torch.optim.SGD(reference_net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    inputs = torch.randn(4, 8, 3, 32, 32)

    for x in inputs:
        ours.zero_grad()
        ours_net(x).square().mean().backward()
        ours.step()
        reference.zero_grad()
        reference_net(x).square().mean().backward()
        reference.step()

    for (name, a), b in zip(ours_net.named_parameters(), reference_net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_parameters_and_gradients_live_in_the_flat_buffers() -> None:
    """One all-reduce and one overflow check need every gradient in one buffer, and a graph
    replay needs backward to write the same memory every time."""
    net = small_net(0, torch.channels_last)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimizer = ts.SGD(net=net, lr=0.1, momentum=0.0, wd=0.0)
    start, end = optimizer.grads.data_ptr(), optimizer.grads.data_ptr() + optimizer.grads.nbytes

    net(torch.randn(2, 3, 32, 32)).sum().backward()

    for name, p in net.named_parameters():
        assert torch.equal(p, before[name]), name  # values and layouts kept
        assert p.is_contiguous(memory_format=torch.channels_last) or p.dim() != 4
        assert p.data_ptr() - optimizer.weights.data_ptr() < optimizer.weights.nbytes
        assert start <= p.grad.data_ptr() < end, name
    assert optimizer.grads.abs().sum() > 0
    optimizer.weights.zero_()
    assert all(p.abs().sum() == 0 for p in net.parameters())


def test_an_overflowed_step_changes_nothing_and_a_kept_one_is_the_plain_step() -> None:
    def stepped(keep: torch.Tensor | None) -> ts.SGD:
        net = small_net(3)
        optimizer = ts.SGD(net=net, lr=0.1, momentum=0.9, wd=1e-3)
        optimizer.velocity.fill_(0.5)
        optimizer.grads.normal_(generator=torch.Generator().manual_seed(4))
        optimizer.step(keep)
        return optimizer

    untouched = small_net(3)
    untouched_weights = torch.cat([p.detach().flatten() for p in untouched.parameters()])
    skipped = stepped(torch.tensor(0.0))
    kept, plain = stepped(torch.tensor(1.0)), stepped(None)

    assert torch.equal(skipped.weights, untouched_weights)
    assert torch.equal(skipped.velocity, torch.full_like(skipped.velocity, 0.5))
    assert torch.allclose(kept.weights, plain.weights, rtol=0, atol=1e-7)
    assert torch.allclose(kept.velocity, plain.velocity, rtol=0, atol=1e-7)
    assert not torch.equal(plain.weights, untouched_weights)


def test_loss_scaler_follows_grad_scaler_through_an_overflow() -> None:
    """Our device-side scaler against torch.amp.GradScaler with torch.optim.SGD: the same scale
    after every step, the overflowed step skipped by both, the same weights."""
    torch.manual_seed(1)
    ours_net, reference_net = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    reference_net.load_state_dict(ours_net.state_dict())
    ours = ts.SGD(net=ours_net, lr=0.1, momentum=0.9, wd=1e-3)
    scaler = LossScaler(device=CPU, init_scale=2.0**4, growth_interval=2)
    reference = torch.optim.SGD(reference_net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    reference_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=2)
    batches = [torch.randn(5, 4) for _ in range(6)]
    batches[3] = batches[3] * 3e38  # this step's gradients overflow

    scales = []
    for x in batches:
        ours.zero_grad()
        (ours_net(x).square().mean() * scaler.scale).backward()
        keep = scaler.unscale_(ours.grads)
        ours.step(keep)
        scaler.update()
        reference.zero_grad()
        reference_scaler.scale(reference_net(x).square().mean()).backward()
        reference_scaler.step(reference)
        reference_scaler.update()
        scales.append((scaler.scale.item(), reference_scaler.get_scale()))

    assert [ours for ours, _ in scales] == [theirs for _, theirs in scales]
    assert scales[3][0] == scales[2][0] / 2  # backed off at the overflow
    assert max(s for s, _ in scales) > 2.0**4  # and grew on clean steps
    for a, b in zip(ours_net.parameters(), reference_net.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert torch.isfinite(a).all()


# --- the graph branch, on the CPU ------------------------------------------------------------


def epoch_lines(stdout: str) -> list[str]:
    """The epoch lines without their wall-clock fields."""
    lines = [line for line in stdout.splitlines() if line.startswith("[Epoch")]
    return [re.sub(r" time=.*", "", line) for line in lines]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_graph_branch_trains_bit_for_bit_like_the_plain_run(
    precision: str, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """train()'s graph branch (snapshot, warm-up steps, eval warm-up, capture, restore) with the
    CPU stand-in for CUDA graphs must give exactly the run without graphs: the warm-up's
    updates to weights, BN statistics, momentum and loss scale are all undone."""
    epochs = "2" if precision == "fp32" else "1"  # fp16 is slow on the CPU
    args = [*QUICK, "--epochs", epochs, "--momentum", "0.9", "--wd", "5e-4", "--seed", "3"]
    args += ["--precision", precision, "--data-dir", str(synthetic_dir)]
    capture = EagerCapture()

    graphs = tc.train(
        settings_for([*args, "--model-dir", str(tmp_path / "graphs")]), capture=capture
    )
    graphs_log = capsys.readouterr().out
    plain = tc.train(
        settings_for([*args, "--model-dir", str(tmp_path / "plain"), "--cuda_graphs", "false"]),
        capture=EagerCapture(),
    )
    plain_log = capsys.readouterr().out

    assert len(capture.captured) == 2  # the training step and the evaluation step
    assert "cuda_graphs=True" in graphs_log and "cuda_graphs=False" in plain_log
    assert f"loss_scaling={precision == 'fp16'}" in graphs_log
    assert epoch_lines(graphs_log) == epoch_lines(plain_log)
    assert len(epoch_lines(plain_log)) == int(epochs)
    assert graphs.best_accuracy == plain.best_accuracy > 0.3
    saved = [torch.load(tmp_path / run / "model.pt") for run in ("graphs", "plain")]
    assert saved[0].keys() == saved[1].keys()
    for name in saved[0]:
        assert torch.equal(saved[0][name], saved[1][name]), name


def test_data_parallel_steps_keep_the_all_reduce_out_of_the_graphs() -> None:
    net = small_net(0)
    step = train_step(net, ts.SGD(net=net, lr=0.1, momentum=0.0, wd=0.0))

    single = ts.step_phases(step, Collective(device=CPU))
    parallel = ts.step_phases(step, Collective(rank=0, world_size=2, device=CPU))
    capture = EagerCapture()
    ts.compose(parallel, capture)

    assert single == [(step, True)]
    assert [capturable for _, capturable in parallel] == [True, False, True]
    assert capture.captured == [step.compute_gradients, step.apply_update]


# --- channels_last, evaluation ---------------------------------------------------------------


def test_channels_last_trains_like_the_default_layout_on_the_cpu() -> None:
    """The GPU's layout, run on the CPU: other kernels, so close rather than equal."""
    batches = torch.randint(0, 256, (3, 8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (3, 8), generator=torch.Generator().manual_seed(0))
    initial = {name: p.detach().clone() for name, p in small_net(5).named_parameters()}
    results = {}
    for memory_format in (torch.channels_last, torch.contiguous_format):
        net = small_net(5, memory_format)
        step = train_step(
            net, ts.SGD(net=net, lr=0.05, momentum=0.9, wd=1e-4), memory_format=memory_format
        )
        assert step.images.is_contiguous(memory_format=memory_format)
        for images, targets in zip(batches, labels, strict=True):
            step.images.copy_(images)
            step.labels.copy_(targets)
            step()
        results[memory_format] = dict(net.named_parameters())

    for name, default in results[torch.contiguous_format].items():
        channels_last = results[torch.channels_last][name]
        if channels_last.dim() == 4:
            assert channels_last.is_contiguous(memory_format=torch.channels_last), name
        assert not torch.equal(channels_last, initial[name]), name
        assert torch.allclose(channels_last, default, rtol=1e-4, atol=1e-5), name


def test_channels_last_flag_reaches_the_cpu_run(
    synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*QUICK, "--epochs", "1", "--channels_last", "true", "--data-dir", str(synthetic_dir)]

    result = tc.train(settings_for(args))

    assert "channels_last=True" in capsys.readouterr().out
    assert result.best_accuracy > 0.3


def test_evaluation_ignores_padding_rows() -> None:
    net = small_net(0)
    mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    step = ts.EvalStep(
        net=net,
        batch_shape=(8, 3, 32, 32),
        mean=mean,
        std=std,
        autocast_dtype=None,
        memory_format=torch.contiguous_format,
    )
    images = torch.randint(0, 256, (11, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        predictions = net.eval()(images.float()).argmax(dim=1)
    test = tc.Split(images=images, labels=predictions)  # labels the net gets all right

    accuracy = tc.evaluate(run_step=step, step=step, test=test, net=net)

    assert accuracy == 1.0  # 11 of 11: the 5 padding rows of the last batch never count
    assert net.training
