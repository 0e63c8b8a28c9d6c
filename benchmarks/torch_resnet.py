"""The CIFAR ResNet-6n+2 in PyTorch, the reference our tests and benchmarks compare with.

The layout of akamaster/pytorch_resnet_cifar10 (option A: `x[:, :, ::2, ::2]`
and zero channels split evenly) and of He et al.'s (2016) pre-activation code,
with the options of `resnet_keras.build_resnet`: `shortcut` "zero_pad" or
"projection" (1x1 conv + BN; a bare 1x1 conv in pre-activation blocks),
`version` "v1" or "v2", `plain`. Every module is named after the Keras layer
it mirrors (`stage2_block1_1_conv`), so `load_keras_weights` copies a Keras
model's weights by name. He-normal convolutions, PyTorch's default batch norm
(momentum 0.1 in its convention, eps 1e-5) and `nn.Linear`. Inputs are raw
NCHW pixels in [0, 255], normalised in `forward` as the Keras models do.
Benchmark- and test-only: PyTorch is never a dependency of the package.
"""

import numpy as np
import torch
from torch import nn

CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)


class TorchResNet(nn.Module):
    def __init__(self, n=3, num_classes=10, shortcut="projection", version="v1", plain=False, width=1,
                 mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.version, self.shortcut, self.plain = version, shortcut, plain
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        m = self.m = nn.ModuleDict()
        cin = 16 * width
        m["stem_conv"] = nn.Conv2d(3, cin, 3, 1, 1, bias=False)
        if version == "v1":
            m["stem_bn"] = nn.BatchNorm2d(cin)
        self.blocks = []
        for s, (cout, stride) in enumerate(((16 * width, 1), (32 * width, 2), (64 * width, 2)), start=1):
            for b in range(1, n + 1):
                name, st = f"stage{s}_block{b}", stride if b == 1 else 1
                if version == "v2":
                    m[name + "_preact_bn"] = nn.BatchNorm2d(cin)
                m[name + "_1_conv"] = nn.Conv2d(cin, cout, 3, st, 1, bias=False)
                m[name + "_1_bn"] = nn.BatchNorm2d(cout)
                m[name + "_2_conv"] = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
                if version == "v1":
                    m[name + "_2_bn"] = nn.BatchNorm2d(cout)
                if not plain and shortcut == "projection" and (st != 1 or cin != cout):
                    m[name + "_0_conv"] = nn.Conv2d(cin, cout, 1, st, bias=False)
                    if version == "v1":
                        m[name + "_0_bn"] = nn.BatchNorm2d(cout)
                self.blocks.append((name, st, cin, cout))
                cin = cout
        if version == "v2":
            m["post_bn"] = nn.BatchNorm2d(cin)
        m["logits"] = nn.Linear(cin, num_classes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight)

    def _skip(self, name, x, pre, st, cin, cout):
        if st == 1 and cin == cout:
            return x
        if self.shortcut == "zero_pad":
            x = x[:, :, ::st, ::st]
            extra = cout - cin
            return nn.functional.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        if self.version == "v2":
            return self.m[name + "_0_conv"](pre)
        return self.m[name + "_0_bn"](self.m[name + "_0_conv"](x))

    def forward(self, x):
        m = self.m
        x = (x - self.mean) / self.std
        x = m["stem_conv"](x)
        if self.version == "v1":
            x = m["stem_bn"](x).relu()
        for name, st, cin, cout in self.blocks:
            if self.version == "v1":
                y = m[name + "_1_bn"](m[name + "_1_conv"](x)).relu()
                y = m[name + "_2_bn"](m[name + "_2_conv"](y))
                x = y if self.plain else y + self._skip(name, x, None, st, cin, cout)
                x = x.relu()
            else:
                pre = m[name + "_preact_bn"](x).relu()
                y = m[name + "_1_bn"](m[name + "_1_conv"](pre)).relu()
                y = m[name + "_2_conv"](y)
                x = y if self.plain else y + self._skip(name, x, pre, st, cin, cout)
        if self.version == "v2":
            x = m["post_bn"](x).relu()
        return m["logits"](x.mean((2, 3)))


def torch_resnet(n=3, num_classes=10, **kwargs):
    """ResNet-(6n+2) for 32x32 NCHW inputs in [0, 255] (see `TorchResNet`)."""
    return TorchResNet(n, num_classes, **kwargs)


def load_keras_weights(net, model):
    """Copy every weight of Keras `model` into `net`, matching modules by layer name.

    Convolution kernels (h, w, in, out) become (out, in, h, w), dense kernels
    are transposed, batch norm's gamma/beta/moving mean/moving variance become
    weight/bias/running_mean/running_var. Raises KeyError when a module has no
    Keras layer of its name (the two networks must have the same layout).
    """
    with torch.no_grad():
        for name, mod in net.m.items():
            w = [np.asarray(v) for v in model.get_layer(name).get_weights()]
            if isinstance(mod, nn.Conv2d):
                mod.weight.copy_(torch.from_numpy(w[0].transpose(3, 2, 0, 1).copy()))
            elif isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.from_numpy(w[0].T.copy()))
                mod.bias.copy_(torch.from_numpy(w[1]))
            else:
                for param, value in zip((mod.weight, mod.bias, mod.running_mean, mod.running_var), w):
                    param.copy_(torch.from_numpy(value))
    return net


def keras_name_of(net):
    """{torch parameter or buffer name: (Keras layer name, weight index)} for comparing the two after training."""
    names = {}
    for name, mod in net.m.items():
        if isinstance(mod, nn.BatchNorm2d):
            for i, attr in enumerate(("weight", "bias", "running_mean", "running_var")):
                names[f"m.{name}.{attr}"] = (name, i)
        else:
            names[f"m.{name}.weight"] = (name, 0)
            if getattr(mod, "bias", None) is not None:
                names[f"m.{name}.bias"] = (name, 1)
    return names


def to_keras_layout(value):
    """A torch tensor as the Keras weight of the same role (inverse of the layouts above)."""
    value = value.detach().numpy()
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if value.ndim == 2:
        return value.T
    return value
