"""Short-run learning: our Keras ResNet-20 against the same network in eager PyTorch.

Same data (first 500 train images per class of the real CIFAR-10, 200 test
images per class), same batch order, same recipe (Adam 1e-3, batch 64, no
augmentation), same architecture (ResNet-20, projection shortcuts). Three
contenders: ours (BN momentum 0.9, epsilon 1e-5), ours with Keras' default
batch norm (momentum 0.99, epsilon 1e-3), and PyTorch (its defaults, He-normal
convolutions as in the reference CIFAR code). Prints test accuracy per epoch
and writes outputs/bench/parity.csv.

    .venv/bin/pip install torch==2.13.0   # benchmark-only, CPU build
    .venv/bin/python benchmarks/torch_parity.py [--epochs 6] [--seeds 0 1]
"""

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

import resnet_keras as rk


def keras_run(data, order, epochs, seed, momentum, epsilon):
    rk.set_seed(seed)
    model = rk.build_resnet(3, bn_momentum=momentum, bn_epsilon=epsilon)
    trainer = rk.training.compile_for_training(model, "adam", 1e-3)
    accs = []
    for e in range(epochs):
        for idx in order[e]:
            trainer.train_on_batch(data.x_train[idx].astype("float32"), data.y_train[idx])
        accs.append(rk.evaluate(model, data.x_test, data.y_test)["accuracy"])
    return accs


def torch_run(data, order, epochs, seed):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_resnet import torch_resnet

    net = torch_resnet(3)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def tensor(x):  # raw pixels: the reference network normalises them itself, as ours does
        return torch.from_numpy(x.astype(np.float32)).permute(0, 3, 1, 2).contiguous()

    x_test = tensor(data.x_test)
    accs = []
    for e in range(epochs):
        net.train()
        for idx in order[e]:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(tensor(data.x_train[idx])), torch.from_numpy(
                data.y_train[idx]).long())
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(x_test[i:i + 500]).argmax(1) for i in range(0, len(x_test), 500)]).numpy()
        accs.append(float(np.mean(pred == data.y_test)))
    return accs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--contenders", nargs="+", default=["ours", "keras-defaults", "pytorch"],
                    choices=["ours", "keras-defaults", "pytorch"])
    args = ap.parse_args()
    data = rk.load_dataset("cifar10", per_class=500, test_per_class=200)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        order = [np.array_split(rng.permutation(len(data.y_train)), len(data.y_train) // 64)
                 for _ in range(args.epochs)]
        runs = {"ours": ("keras (ours: BN 0.9/1e-5)", lambda: keras_run(data, order, args.epochs, seed, 0.9, 1e-5)),
                "keras-defaults": ("keras (Keras BN defaults 0.99/1e-3)",
                                   lambda: keras_run(data, order, args.epochs, seed, 0.99, 1e-3)),
                "pytorch": ("pytorch (eager, defaults)", lambda: torch_run(data, order, args.epochs, seed))}
        for name, run in (runs[c] for c in args.contenders):
            t = time.perf_counter()
            accs = run()
            rows.append({"seed": seed, "contender": name, **{f"epoch{e + 1}": a for e, a in enumerate(accs)},
                         "seconds": round(time.perf_counter() - t)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    os.makedirs("outputs/bench", exist_ok=True)
    table.to_csv("outputs/bench/parity.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
