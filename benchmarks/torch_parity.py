"""Short-run learning: our Keras ResNet on each backend against the same network in eager PyTorch.

The paper's CIFAR recipe (He et al. 2015, section 4.2) on a slice of the real
CIFAR-10: the first 500 train images per class (5,000), SGD with momentum 0.9,
learning rate 0.1, weight decay 1e-4 on every parameter, batch 128, pad-4
random crops and horizontal flips, option-A shortcuts, ResNet-56 by default.
Every contender sees the same batches and the same crops and flips (drawn
from the seed on the host); each initialises its network its own way from the
seed. Test accuracy on 2,000 test images (200 per class) after each epoch.

Contenders, each in its own process:
    tensorflow, jax          ours (`rk.build_resnet`, `rk.training.compile_for_training`)
    pytorch                  `benchmarks/torch_resnet.py`, eager, float32
    tensorflow-he-classifier ours with the classifier kernel drawn He-normal, as in
                             akamaster/pytorch_resnet_cifar10 (ours and PyTorch's
                             `nn.Linear` default: uniform +-1/sqrt(fan_in))

Appends one row per run to outputs/bench/parity.csv (a run already there with
at least as many epochs is not repeated: every seed's first epochs are the
same batches) and prints the mean and standard deviation over seeds of each
contender. Keras' training loss includes the weight-decay penalty; PyTorch's
does not.

    .venv/bin/pip install torch==2.13.0   # benchmark-only, CPU build
    .venv/bin/python benchmarks/torch_parity.py [--depth 56] [--epochs 4] [--seeds 0 1 2]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = "outputs/bench/parity.csv"
CONTENDERS = ("pytorch", "tensorflow", "jax", "tensorflow-he-classifier")
LR, MOMENTUM, WEIGHT_DECAY, BATCH = 0.1, 0.9, 1e-4, 128


def batches(n_train, epochs, seed):
    """[(indices, crops)] per epoch: the shuffled batches and their crop/flip draws, the same for everyone."""
    from resnet_keras.data import draw_crops

    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(epochs):
        order = np.array_split(rng.permutation(n_train), n_train // BATCH)
        plan.append([(idx, draw_crops(rng, len(idx))) for idx in order])
    return plan


def keras_run(data, plan, depth, seed, he_classifier):
    import keras

    import resnet_keras as rk
    from resnet_keras.data import crop_flip

    rk.set_seed(seed)
    model = rk.build_resnet(depth, shortcut="zero_pad", weight_decay=WEIGHT_DECAY)
    if he_classifier:
        kernel = model.get_layer("logits").kernel
        kernel.assign(keras.initializers.HeNormal(seed=seed)(kernel.shape))
    trainer = rk.training.compile_for_training(model, "sgd", LR, momentum=MOMENTUM)
    accs, losses = [], []
    for epoch in plan:
        losses.append(np.mean([float(trainer.train_on_batch(crop_flip(data.x_train[idx], crops),
                                                            data.y_train[idx])[0]) for idx, crops in epoch]))
        accs.append(rk.evaluate(model, data.x_test, data.y_test)["accuracy"])
    return accs, losses


def torch_run(data, plan, depth, seed):
    import torch
    from torch import nn

    from resnet_keras.data import crop_flip

    sys.path.insert(0, HERE)
    from torch_resnet import torch_resnet

    torch.manual_seed(seed)
    net = torch_resnet((depth - 2) // 6, shortcut="zero_pad")
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    def tensor(x):  # raw NCHW pixels: the reference network normalises them itself, as ours does
        return torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2).contiguous()

    x_test = tensor(data.x_test)
    accs, losses = [], []
    for epoch in plan:
        net.train()
        epoch_losses = []
        for idx, crops in epoch:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(tensor(crop_flip(data.x_train[idx], crops))),
                                               torch.from_numpy(data.y_train[idx]).long())
            loss.backward()
            opt.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(x_test[i:i + 500]).argmax(1) for i in range(0, len(x_test), 500)]).numpy()
        accs.append(float(np.mean(pred == data.y_test)))
    return accs, losses


def one(contender, depth, epochs, seed):
    """Train one contender (in this process, whose backend the caller chose) and print its row as JSON."""
    import resnet_keras as rk

    data = rk.load_dataset("cifar10", per_class=500, test_per_class=200)
    plan = batches(len(data.y_train), epochs, seed)
    t = time.perf_counter()
    if contender == "pytorch":
        accs, losses = torch_run(data, plan, depth, seed)
    else:
        accs, losses = keras_run(data, plan, depth, seed, he_classifier=contender.endswith("he-classifier"))
    row = {"depth": depth, "seed": seed, "contender": contender, "seconds": round(time.perf_counter() - t)}
    row.update({f"acc{e + 1}": round(a, 4) for e, a in enumerate(accs)})
    row.update({f"loss{e + 1}": round(v, 4) for e, v in enumerate(losses)})
    print("ROW " + json.dumps(row), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=56, help="6n+2: 20, 32, 44, 56, 110")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--contenders", nargs="+", default=list(CONTENDERS[:3]), choices=CONTENDERS)
    ap.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.depth < 8 or (args.depth - 2) % 6:
        ap.error(f"--depth {args.depth}: expected 6n+2 with n >= 1 (20, 32, 44, 56, 110)")
    if args.one:
        return one(args.one, args.depth, args.epochs, args.seeds[0])

    import pandas as pd

    os.makedirs(os.path.dirname(CSV), exist_ok=True)
    done = pd.read_csv(CSV) if os.path.exists(CSV) else pd.DataFrame(columns=["depth", "seed", "contender"])
    for seed in args.seeds:
        for contender in args.contenders:
            earlier = done[(done.depth == args.depth) & (done.seed == seed) & (done.contender == contender)]
            if f"acc{args.epochs}" in earlier and earlier[f"acc{args.epochs}"].notna().any():
                continue  # the same batches' first epochs were run before (rows are resumable)
            backend = "tensorflow" if contender == "pytorch" else contender.split("-")[0]
            env = dict(os.environ, KERAS_BACKEND=backend)
            cmd = [sys.executable, __file__, "--one", contender, "--depth", str(args.depth),
                   "--epochs", str(args.epochs), "--seeds", str(seed)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            rows = [json.loads(line[4:]) for line in out.stdout.splitlines() if line.startswith("ROW ")]
            if out.returncode or not rows:
                sys.exit(f"{contender} seed {seed} failed:\n{out.stderr[-2000:]}")
            print(rows[0], flush=True)
            done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)  # columns aligned by name
            done.to_csv(CSV + ".tmp", index=False)
            os.replace(CSV + ".tmp", CSV)
    table = pd.read_csv(CSV)
    table = table[(table.depth == args.depth) & table.seed.isin(args.seeds)]
    last = f"acc{args.epochs}"
    print(table.groupby("contender")[[f"acc{e + 1}" for e in range(args.epochs)]].agg(["mean", "std"])
          .round(4).to_string())
    print(f"\nfinal test accuracy ({last}), mean +- std over seeds {args.seeds}:")
    for name, g in table.groupby("contender"):
        print(f"  {name:26s} {g[last].mean():.4f} +- {g[last].std():.4f}  (n={len(g)})")


if __name__ == "__main__":
    main()
