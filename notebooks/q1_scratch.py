# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] tags=["remove_cell"]
# # Q1: a CIFAR ResNet trained from scratch
#
# The parameters below choose the network (ResNet-20 by default, the
# assignment's); the report of each run is titled with the network it trained.

# %% tags=["parameters"]
dataset = "cifar10"  # cifar10 or cifar100
label_mode = "fine"  # cifar100 only: fine (100 classes) or coarse (20)
data_dir = None  # folder with the official CIFAR python layout; None: $RESNET_KERAS_DATA or Keras' cache
per_class = None  # train only on the first k images of each class (None: all)
test_per_class = None  # evaluate on the first k test images of each class (None: all)
validation_split = 0.1  # fraction of each class held out for validation
depth = 20  # weight layers: 6n+2 for n blocks per stage (20, 32, 44, 56, 110, ...)
version = "v1"  # v1 (post-activation) or v2 (pre-activation)
shortcut = "projection"  # projection (1x1 conv) or zero_pad (the paper's option A)
width = 1  # filter multiplier
plain = False  # no shortcuts at all (the plain baseline)
dropout = 0.0  # dropout rate before the classifier
weight_decay = 1e-4  # coupled L2 on the kernels
optimizer = "adam"  # sgd, adam or rmsprop
learning_rate = 0.001  # initial learning rate
momentum = 0.9  # sgd only
nesterov = False  # sgd only
schedule = "constant"  # constant, step (x0.1 at 50% and 75%) or cosine
warmup_epochs = 0  # linear warm-up epochs
epochs = 20  # training epochs
batch_size = 128  # images per step
augment = True  # pad-4 random crop and horizontal flip
pipeline = "auto"  # where batches are made: auto (device on a GPU, else host), host, device, resident (docs/sweep.md)
seed = 0  # seed for weights, data order and augmentation
precision = "auto"  # auto, float32, mixed_float16 or mixed_bfloat16; auto: mixed_float16 on a GPU,
#   mixed_bfloat16 on a CPU with bfloat16 instructions (AVX512-BF16, AMX), else float32
devices = 1  # devices to train on (JAX backend): each batch is split over them, the recipe stays; "all": every GPU
out_dir = "outputs/q1/dev"  # where the artefacts go (the sweep sets it)

# %%
from resnet_keras import models, plots, report

report.title("Q1", models.resnet_name(depth, version, plain), dataset)

# %% [markdown]
# The CIFAR ResNet of He et al. (2015, section 4.2): a 3x3 stem, three stages of
# `n` residual blocks with 16, 32 and 64 filters, global average pooling and a
# softmax classifier, 6n+2 weight layers in all (n=3 gives ResNet-20, the
# assignment's network). It is trained from random initialisation with the
# standard augmentation (4-pixel padding, random 32x32 crop, horizontal flip).
# This report shows the learning curves, the test accuracy and the confusion
# matrix, and ends with the run's figures; the trained model is saved as
# `model.h5` beside it.

# %% [markdown]
# ## Setup

# %%
import resnet_keras as rk

rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
print(f"precision: {precision}, devices: {devices}")

# %% [markdown]
# ## Prepare the data
#
# Images stay uint8 until the model's first layer, which normalises each channel
# with the statistics of the training images.

# %%
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
mean, std = data.channel_stats()
print(f"{dataset}: {data.describe()}")

# %% [markdown]
# ## Build the model

# %%
model = rk.build_resnet(depth, data.num_classes, version=version, shortcut=shortcut, width=width, plain=plain,
                        dropout=dropout, weight_decay=weight_decay, mean=mean, std=std)
print(f"{model.name}: {rk.count_params(model):,} trainable parameters, "
      f"{rk.count_weight_layers(model)} weight layers")

# %% [markdown]
# ## Train
#
# One line per epoch. An interrupted run continues from its last completed epoch.

# %%
history = rk.train(model, data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, schedule=schedule,
                   warmup_epochs=warmup_epochs, augment=augment, seed=seed, pipeline=pipeline)
curves = plots.plot_history(history, f"{model.name} on {dataset}")

# %% [markdown]
# ## Evaluate on the test set
#
# The last epoch's model, which the run reports, and the model of the epoch with
# the best validation accuracy (`best.h5`), tested once for comparison.

# %%
test = rk.evaluate(model, data.x_test, data.y_test)
print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
best = rk.evaluate_best(out_dir, data)  # the best-validation epoch's model (best.h5), for comparison
if best:
    print(f"best-validation model: test accuracy {best['accuracy']:.4f}, test loss {best['loss']:.4f}")
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)

# %% [markdown]
# ## Save
#
# The model (`model.h5`, probabilities out), the figures, the history, a few test images (`examples/`, the
# demo's) and the key figures (`results.json`).

# %%
results = report.finish(out_dir, model, history, test, {"curves": curves, "confusion": confusion}, precision=precision,
                        data=data, best=best)
