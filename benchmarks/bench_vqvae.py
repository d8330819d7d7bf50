"""Paper 002's perfusion VQ-VAE (``gliotype.nn.vqvae``): encoding throughput, a whole tumour, training, quality.

* ``vqvae-encode``: ``encode`` + ``quantize`` of random curves of 60 points under ``torch.inference_mode``,
  curves/s; the lean encoder at batch 4096, the paper-style encoder at batch 512 (as PERFORMANCE.md's row
  for the authors' encoder: 1,692 curves/s on 2 cores, 8.65 M parameters, 140 MFLOP per curve).
* ``vqvae-tumour``: :func:`encode_voxels` of 30,744 curves (the authors' example tumour) to codes and
  float16 latents, seconds (authors: 17.1 s). The paper-style row is one timed run.
* ``vqvae-train``: :func:`train_vqvae` with its defaults (50,000 curves, 5 epochs, batch 512), seconds.
* ``vqvae-recon``: both encoders trained identically (2,048 synthetic DSC signal curves, 5 epochs,
  batch 64, lr 1e-3; seeds 0-2, one in quick mode), then the mean L1 reconstruction error on 2,048
  held-out curves (note), at each encoder's default ``vq_weight`` (lean 1.0, paper 1/768) and with the
  two swapped. The curves: gamma-variate boluses (alpha 2-4, beta 1.5-4 s, arrival 10-25 s, 10-60%
  signal drop) with a slow leakage term on half of them, TR 1.5 s, 1% noise, through
  ``concentration_to_signal`` and ``scale_curves``. References in the note: the mean curve (one
  prototype) and 8-means on the training curves (8 free prototypes; the VQ-VAE's 8 codes are a
  2 x 2 x 2 product, so 8-means is about the best it can reach).

Rows marked ``1thr`` pin torch to one intra-op thread: two threads on two cores shared with other jobs
stall on each other, so those rows show the model's own cost whatever the machine's load. Training and
the reconstruction comparison run on one thread only: under a load average of 4 from other jobs, the
two-thread training of 50,000 curves had not finished after 6 minutes (11.7 s on one thread).
"""

from __future__ import annotations

import time

from _harness import Case, Context, Row, Target, make_row, measure

T, TUMOUR = 60, 30_744
ENCODE_TARGET = Target(">= 50,000 curves/s", (("throughput", ">=", 50_000.0),))
TUMOUR_TARGET = Target("<= 1 s per tumour", (("time_s", "<=", 1.0),))
TRAIN_TARGET = Target("<= 20 s per fold", (("time_s", "<=", 20.0),))
CASES = [
    Case("vqvae-encode", "lean b4096 T60", target=ENCODE_TARGET, params={"encoder": "lean", "batch": 4096}),
    Case("vqvae-encode", "lean b4096 T60 1thr", params={"encoder": "lean", "batch": 4096, "threads": 1}),
    Case("vqvae-encode", "paper b512 T60", params={"encoder": "paper", "batch": 512}),
    Case("vqvae-encode", "paper b512 T60 1thr", params={"encoder": "paper", "batch": 512, "threads": 1}),
    Case("vqvae-tumour", "lean 30744 voxels", target=TUMOUR_TARGET, params={"encoder": "lean"}),
    Case("vqvae-tumour", "lean 30744 voxels 1thr", params={"encoder": "lean", "threads": 1}),
    Case("vqvae-tumour", "paper 30744 voxels", quick=False, target=TUMOUR_TARGET, params={"encoder": "paper"}),
    Case("vqvae-train", "lean 50k curves 5 epochs 1thr", quick=False, target=TRAIN_TARGET,
         params={"encoder": "lean", "threads": 1}),
    Case("vqvae-recon", "lean 2048 curves 1thr", params={"encoder": "lean", "threads": 1, "seeds": 3}),
    Case("vqvae-recon", "paper 2048 curves 1thr", quick=False, params={"encoder": "paper", "threads": 1, "seeds": 3}),
    Case("vqvae-recon", "lean vq_weight 1/768 1thr", quick=False,
         params={"encoder": "lean", "threads": 1, "codebook_weight": 1 / 768, "seeds": 3}),
    Case("vqvae-recon", "paper vq_weight 1 1thr", quick=False,
         params={"encoder": "paper", "threads": 1, "codebook_weight": 1.0, "seeds": 1}),
]


def dsc_curves(n: int, seed: int):
    """Synthetic DSC signal curves, scaled per curve as the pipeline does: (n, 60) float32."""
    import numpy as np

    from gliotype.prepare.perfusion import concentration_to_signal, scale_curves

    rng = np.random.default_rng(seed)
    t = np.arange(T) * 1.5
    alpha, beta = rng.uniform(2, 4, (n, 1)), rng.uniform(1.5, 4, (n, 1))
    s = np.clip(t - rng.uniform(10, 25, (n, 1)), 0, None)
    g = s ** alpha * np.exp(-s / beta)
    g /= g.max(axis=1, keepdims=True)
    leak = (rng.random((n, 1)) < 0.5) * rng.uniform(0.05, 0.3, (n, 1)) * (1 - np.exp(-s / 20))
    depth = -np.log(1 - rng.uniform(0.1, 0.6, (n, 1))) / 5.0  # concentration for a 10-60% drop
    signal = concentration_to_signal(depth * (g + leak)) * (1 + rng.normal(0, 0.01, (n, T)))
    return scale_curves(signal)


def model_facts(model) -> str:
    params = sum(p.numel() for p in model.encoder.parameters())
    return f"encoder {params / 1e6:.3g} M params"


def run(case: Case, ctx: Context) -> list[Row]:
    import torch

    torch.set_num_threads(case.params.get("threads", 2))
    return {"vqvae-encode": _encode, "vqvae-tumour": _tumour, "vqvae-train": _train,
            "vqvae-recon": _recon}[case.name](case, ctx)


def _model(encoder: str):
    import torch

    from gliotype.nn.vqvae import PerfusionVQVAE, VQVAEConfig

    torch.manual_seed(0)
    return PerfusionVQVAE(VQVAEConfig(encoder=encoder)).eval()


def _encode(case: Case, ctx: Context) -> list[Row]:
    import torch

    model, batch = _model(case.params["encoder"]), case.params["batch"]
    curves = torch.rand(batch, T)

    def call() -> None:
        with torch.inference_mode():
            model.quantize(model.encode(curves))
    times = measure(call, ctx.repeats(7, quick=3))
    return [make_row(case, times, per="batch", items=batch, unit="curves/s", note=model_facts(model))]


def _tumour(case: Case, ctx: Context) -> list[Row]:
    import numpy as np

    from gliotype.nn.vqvae import encode_voxels

    encoder = case.params["encoder"]
    model, curves = _model(encoder), np.random.default_rng(0).random((TUMOUR, T), dtype=np.float32)
    batch = 4096 if encoder == "lean" else 512
    encode_voxels(model, curves[:batch], batch_size=batch)  # warm-up
    runs = ctx.repeats(5, quick=1) if encoder == "lean" else 1
    times = measure(lambda: encode_voxels(model, curves, batch_size=batch), runs, warmup=False)
    row = make_row(case, times, per="tumour", items=TUMOUR, unit="curves/s",
                   note=f"batch {batch}, codes + float16 latents; {model_facts(model)}")
    row.warmup = f"one batch of {batch}"
    return [row]


def _train(case: Case, ctx: Context) -> list[Row]:
    from gliotype.prepare.perfusion import train_vqvae

    curves = [dsc_curves(5_000, seed=p) for p in range(10)]  # 10 patients x 5,000 voxels
    summary = {}

    def call() -> None:
        summary.update(train_vqvae(curves)[1])
    times = measure(call, ctx.repeats(1, quick=1), warmup=False)
    row = make_row(case, times, per="fold", items=5 * 50_000, unit="curve-steps/s",
                   note=f"reconstruction L1 {summary['reconstruction']:.4f}; codes used "
                        f"{sum(c > 0 for c in summary['code_histogram'])} of 8")
    row.warmup = "none"
    return [row]


def _recon(case: Case, ctx: Context) -> list[Row]:
    import numpy as np
    import torch
    from sklearn.cluster import KMeans

    from gliotype.nn.vqvae import VQVAEConfig, encode_voxels, resample_curves
    from gliotype.prepare.perfusion import train_vqvae

    train, test = dsc_curves(2048, seed=1), dsc_curves(2048, seed=2)
    config = VQVAEConfig(encoder=case.params["encoder"], codebook_weight=case.params.get("codebook_weight"))
    times, l1s, used = [], [], []
    for seed in range(1 if ctx.quick else case.params["seeds"]):
        t0 = time.perf_counter()
        model, _ = train_vqvae([train], config, epochs=5, batch_size=64, seed=seed)
        times.append(time.perf_counter() - t0)
        with torch.inference_mode():
            out = model(torch.as_tensor(test))
        l1s.append(float((out["recon"] - out["target"]).abs().mean()))
        used.append(len(np.unique(encode_voxels(model, test)[0])))
    target = out["target"].numpy()
    train_target = resample_curves(torch.as_tensor(train), config.decoder_length, config.time_axis).numpy()
    km = KMeans(8, n_init=4, random_state=0).fit(train_target)
    km_l1 = float(np.abs(target - km.cluster_centers_[km.predict(target)]).mean())
    row = make_row(case, times, per="training", items=5 * 2048, unit="curve-steps/s",
                   note=f"held-out L1 {np.mean(l1s):.4f} (seeds {', '.join(f'{v:.4f}' for v in l1s)}; mean curve "
                        f"{float(np.abs(target - target.mean(0)).mean()):.4f}, 8-means {km_l1:.4f}); codes used "
                        f"{used} of 8; vq_weight {config.vq_weight:.3g}; {model_facts(model)}")
    row.warmup = "none"
    return [row]
