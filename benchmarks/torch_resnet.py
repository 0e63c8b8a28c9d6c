"""The CIFAR ResNet-6n+2 in PyTorch, the reference our benchmarks compare with.

Same layout as `resnet_keras.build_resnet(n)` with projection shortcuts:
3x3 stem, three stages of n basic blocks (16, 32, 64 filters), global average
pooling, linear classifier; He-normal convolutions as in the reference CIFAR
code; PyTorch's default batch norm (momentum 0.1 in its convention, eps 1e-5).
Benchmark-only: PyTorch is never a dependency of the package.
"""

from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b1(self.c1(x)).relu()
        return (self.b2(self.c2(y)) + self.shortcut(x)).relu()


def torch_resnet(n=3, num_classes=10):
    """ResNet-(6n+2) for 32x32 NCHW inputs."""
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(n):
            layers.append(Block(cin, cout, stride if b == 0 else 1))
            cin = cout
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
    return net
