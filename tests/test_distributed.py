"""Data parallel through torchrun: 2 real gloo processes on the CPU reach the weights of one
process at the same global batch, a run resumes on another number of processes, and FID features
are computed across the processes and gathered in the one-process order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import REPO, run_cli
from genlab.errors import GenlabError
from genlab.checkpoint import latest_checkpoint
from genlab.distributed import Processes

COMMON = ["--dataset", "digits", "--batch-size", "32", "--logging-steps", "2",
          "--saving-steps", "2", "--fid-samples", "0", "--seed", "3"]
# DCGAN: BatchNorm in both networks (over the global batch) and DiffAugment's per-image draws.
DCGAN = ["dcgan", *COMMON, "--sync-batchnorm", "--diff-augment", "translation,cutout"]
VAE = ["vae", *COMMON, "--latent-dim", "8"]


def torchrun(*args, processes: int = 2) -> subprocess.CompletedProcess:
    # --standalone: torchrun picks a free port for its rendezvous itself (no race with a port
    # chosen here); gloo on the loopback interface, whatever the machine's hostname resolves to.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", str(processes), "-m", "genlab", "train",
                           *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run_dir: Path) -> tuple[int, dict[str, torch.Tensor]]:
    payload, _ = latest_checkpoint(run_dir, warn=pytest.fail)
    return payload["step"], payload["model"]


def assert_close_weights(a: Path, b: Path) -> None:
    (step_a, wa), (step_b, wb) = weights(a), weights(b)
    assert step_a == step_b
    assert wa.keys() == wb.keys()
    for name in wa:
        # Sums in another order (two halves, then the all-reduce): float rounding only.
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=2e-5, msg=name)


@pytest.fixture(scope="module")
def one_process_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    for name, args in (("dcgan", DCGAN), ("vae", VAE)):
        result = run_cli("train", *args, "--steps", "4", "--run-dir", root / name)
        assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize("name,args", [("dcgan", DCGAN), ("vae", VAE)])
def test_two_gloo_processes_reach_the_one_process_weights(one_process_runs, tmp_path, name, args):
    result = torchrun(*args, "--steps", "4", "--run-dir", tmp_path / "two")
    assert result.returncode == 0, result.stderr
    assert "2 processes (cpu), global batch 32 = 2 x 16" in result.stderr
    assert result.stderr.count("trained to step 4") == 1  # rank 0 alone reports
    assert_close_weights(one_process_runs / name, tmp_path / "two")
    # Only rank 0 wrote: one event file, one set of grids per saving step.
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("*.pt")) == [
        "step-00000002.pt", "step-00000004.pt"]


@pytest.mark.extended  # ~10 s; in `make test-extended` to keep the suite under 10 minutes
def test_a_run_resumes_on_another_number_of_processes(one_process_runs, tmp_path):
    first = torchrun(*DCGAN, "--steps", "2", "--run-dir", tmp_path / "run")
    assert first.returncode == 0, first.stderr
    second = run_cli("train", *DCGAN, "--steps", "4", "--run-dir", tmp_path / "run")
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    assert_close_weights(one_process_runs / "dcgan", tmp_path / "run")


def test_a_global_batch_that_does_not_split_is_refused(tmp_path):
    from test_trainer import make_trainer

    with pytest.raises(GenlabError, match=r"--batch-size 64 \(the global batch\) does not split "
                                          r"evenly over 3 processes"):
        make_trainer(tmp_path, steps=1, saving=1, processes=Processes(rank=0, world_size=3))


# --- FID features across processes ------------------------------------------------------------

class PixelFeatures:
    """Stands in for Inception (tested on its own in test_fid): features that are a fixed
    function of each image, so the gathered set can be compared with one process's."""

    batch_size = 7

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.flatten(1).double()                                 # (n, C*H*W)
        return torch.nn.functional.pad(flat, (0, 2048 - flat.shape[1]))  # (n, 2048)

    def stream(self, batches, advance=None):
        for images in batches:
            yield self(images)


def tiny_generator():
    from genlab.run import build_model, new_config

    config = new_config("dcgan", {"dataset": "digits", "seed": 5})
    config.image_shape = (1, 32, 32)
    return build_model(config)


def _gather_worker(rank: int, world_size: int, port: int, n: int, out: str) -> None:
    from genlab.metrics import evaluate

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size)
    try:
        evaluate.GENERATE_BATCH = 3  # several batches a process with few images
        stats = evaluate.generated_stats(PixelFeatures(), tiny_generator(), n, seed=11,
                                         device=torch.device("cpu"),
                                         processes=Processes(rank, world_size))
        if rank == 0:
            torch.save(stats.features, out)
        else:
            assert stats is None
    finally:
        dist.destroy_process_group()


def test_fid_features_are_split_over_processes_and_gathered_in_order(tmp_path, monkeypatch):
    from genlab.metrics import evaluate

    n = 17  # 6 batches of 3 (the last of 2): ranks 0 and 1 take turns, the last is rank 1's
    mp.spawn(_gather_worker, args=(2, free_port(), n, str(tmp_path / "gathered.pt")), nprocs=2)
    monkeypatch.setattr(evaluate, "GENERATE_BATCH", 3)
    alone = evaluate.generated_stats(PixelFeatures(), tiny_generator(), n, seed=11,
                                     device=torch.device("cpu")).features
    gathered = torch.load(tmp_path / "gathered.pt", weights_only=True)
    assert gathered.shape == (n, 2048)
    assert torch.equal(gathered, alone)


def _gloo_threads_after_stop(rank: int, port: int, out: str) -> None:
    from genlab import distributed

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))
    # What the test is about: torch._dynamo not imported yet, as in `genlab train`.
    assert "torch._dynamo" not in sys.modules
    distributed.start(distributed.from_environment(), torch.device("cpu"))
    parameter = torch.nn.Parameter(torch.ones(3))
    torch.optim.Adam([parameter])  # the trainer's first optimiser imports torch._dynamo
    parameter.grad = torch.full((3,), float(rank))
    distributed.average_gradients([parameter], 2)  # one all-reduce, as a training step makes
    assert parameter.grad.tolist() == [0.5] * 3
    distributed.stop()
    threads = [Path(f"/proc/self/task/{t}/comm").read_text().strip()
               for t in os.listdir("/proc/self/task")]
    Path(f"{out}.{rank}").write_text("\n".join(t for t in threads if "gloo" in t))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_leaving_the_group_ends_its_threads(tmp_path):
    # gloo threads still running when the interpreter exits can abort a finished process.
    mp.spawn(_gloo_threads_after_stop, args=(free_port(), str(tmp_path / "threads")), nprocs=2)
    for rank in (0, 1):
        assert (tmp_path / f"threads.{rank}").read_text() == "", f"rank {rank}"
