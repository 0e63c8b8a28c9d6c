"""Our networks compute what the PyTorch reference computes, given the same weights.

The reference is `benchmarks/torch_resnet.py` (akamaster's CIFAR ResNet and
He et al.'s pre-activation network). For each architecture: copy the Keras
weights into PyTorch, then on the same batch compare the logits in inference
and training mode, the loss, and every parameter after k steps of SGD with
momentum and weight decay (PyTorch's `SGD(weight_decay=...)` decays every
parameter, as our builders do by default). Runs on whichever Keras backend is
active; CI runs it on TensorFlow and on JAX. Skipped where PyTorch is not
installed (`pip install torch==2.13.0`, CPU).
"""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch==2.13.0): "
                                            "the equivalence test against the reference needs it")

import keras  # noqa: E402

import resnet_keras as rk  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from torch_resnet import keras_name_of, load_keras_weights, to_keras_layout, torch_resnet  # noqa: E402

pytestmark = pytest.mark.backend

NETWORKS = [  # (n, shortcut, version, plain)
    (3, "zero_pad", "v1", False),
    (3, "projection", "v1", False),
    (9, "zero_pad", "v1", False),
    (9, "projection", "v1", False),
    (3, "projection", "v2", False),
    (3, "zero_pad", "v2", False),
    (3, "zero_pad", "v1", True),
]
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-3
# Steps of SGD compared: float32 training is chaotic in deep networks (on random data, batch 16), so two
# exact implementations drift apart step by step: measured, ResNet-56 with projections differs from the
# reference by 2e-5 (relative to each tensor's largest value) after one step and by 2% after three, on
# JAX as on TensorFlow. One step checks every gradient, the momentum and the decay; three the recurrence.
STEPS = {3: 3, 9: 1}


def networks(n, shortcut, version, plain, weight_decay=0.0):
    torch.manual_seed(0)
    rk.set_seed(0)
    model = rk.build_resnet(6 * n + 2, shortcut=shortcut, version=version, plain=plain, weight_decay=weight_decay)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # batch-norm statistics and affine parameters away from 0/1, so they matter,
        if isinstance(layer, keras.layers.BatchNormalization):  # scaled so that logits stay of order 1-10
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.2, 0.6, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])
    net = load_keras_weights(torch_resnet(n, shortcut=shortcut, version=version, plain=plain), model)
    return model, net


def batch(seed=0, b=16):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (b, 32, 32, 3)).astype(np.float32)
    return x, rng.integers(0, 10, b).astype(np.int32)


def nchw(x):
    return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("n,shortcut,version,plain", NETWORKS)
def test_same_logits_and_loss_as_the_pytorch_reference(n, shortcut, version, plain):
    model, net = networks(n, shortcut, version, plain)
    logits_model = rk.training.training_model(model)
    x, y = batch()
    for training in (False, True):
        net.train(training)
        with torch.no_grad():
            ref = net(nchw(x)).numpy()
        ours = keras.ops.convert_to_numpy(logits_model(x, training=training))
        assert 0.1 < np.abs(ref).max() < 1e3  # a scale at which atol 1e-4 means something
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4, err_msg=f"training={training}")
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, ours)
        ref_loss = torch.nn.functional.cross_entropy(torch.from_numpy(ref), torch.from_numpy(y).long())
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-5)


@pytest.mark.parametrize("n,shortcut,version,plain", NETWORKS[:5])
def test_same_parameters_after_sgd_steps_with_momentum_and_weight_decay(n, shortcut, version, plain):
    model, net = networks(n, shortcut, version, plain, weight_decay=WEIGHT_DECAY)
    trainer = rk.training.compile_for_training(model, "sgd", LR, MOMENTUM)
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    net.train()
    # Keras' loss includes the L2 penalty (wd/2 |w|^2 over every parameter), PyTorch's cross-entropy does not.
    penalty = WEIGHT_DECAY / 2 * sum(float(np.sum(np.square(keras.ops.convert_to_numpy(v))))
                                     for v in model.trainable_weights)
    losses = []
    for step in range(STEPS[n]):
        x, y = batch(step + 1)
        ours = trainer.train_on_batch(x, y, return_dict=True)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(nchw(x)), torch.from_numpy(y).long())
        loss.backward()
        opt.step()
        losses.append((ours["loss"], float(loss)))
    assert losses[0][0] == pytest.approx(losses[0][1] + penalty, rel=1e-5)
    state = dict(net.named_parameters())
    state.update(dict(net.named_buffers()))
    checked = 0
    for torch_name, (layer, index) in keras_name_of(net).items():
        if torch_name.endswith("running_var"):
            continue  # PyTorch updates it with the unbiased batch variance, Keras with the biased one (docs/)
        ours = keras.ops.convert_to_numpy(model.get_layer(layer).weights[index])
        ref = to_keras_layout(state[torch_name])
        # rtol 1e-3, relative to the tensor's scale (elements near 0 have no relative precision to speak of)
        np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max(), err_msg=torch_name)
        checked += 1
    assert checked == len(model.weights) - sum(isinstance(layer, keras.layers.BatchNormalization)
                                               for layer in model.layers)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_follows_pytorch_across_learning_rate_drops(nesterov):
    # The step schedule divides the rate by 10: PyTorch's velocity is in gradient units (v <- m v + g,
    # w <- w - lr v), so the step shrinks at once; Keras' own SGD keeps it in step units (v <- m v - lr g,
    # w <- w + v) and goes on taking steps of the old rate for ~1/(1-m) iterations.
    steps, drops = 12, (4, 8)
    grads = np.random.default_rng(0).normal(size=(steps, 5)).astype(np.float32)
    w0 = np.linspace(-1, 1, 5).astype(np.float32)
    schedule = rk.LRSchedule("step", 0.1, steps, milestones=[d / steps for d in drops])
    opt = rk.make_optimizer("sgd", schedule, momentum=0.9, nesterov=nesterov)
    w = keras.Variable(w0)
    ref = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    ref_opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9, nesterov=nesterov)
    ref_schedule = torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=list(drops), gamma=0.1)
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
        ref.grad = torch.from_numpy(g.copy())
        ref_opt.step()
        ref_schedule.step()
        np.testing.assert_allclose(keras.ops.convert_to_numpy(w), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
