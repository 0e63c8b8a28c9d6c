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
# # Q2: one point of the depth x optimizer grid
#
# The parameters below choose the network, the optimizer and the batch size;
# the report of each run is titled with them.

# %% tags=["parameters"]
dataset = "cifar10"  # cifar10 or cifar100
label_mode = "fine"  # cifar100 only: fine (100 classes) or coarse (20)
data_dir = None  # folder with the official CIFAR python layout; None: $RESNET_KERAS_DATA or Keras' cache
per_class = None  # train only on the first k images of each class (None: all)
test_per_class = None  # evaluate on the first k test images of each class (None: all)
validation_split = 0.1  # fraction of each class held out for validation
depth = 44  # weight layers: 6n+2 for n blocks per stage (20, 32, 44, 56, 110, ...)
version = "v1"  # v1 (post-activation) or v2 (pre-activation)
shortcut = "projection"  # projection (1x1 conv) or zero_pad (the paper's option A)
weight_decay = 1e-4  # coupled L2 on every weight (the paper's code)
optimizer = "rmsprop"  # sgd, adam or rmsprop
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
out_dir = "outputs/q2/dev"  # where the artefacts go (the sweep sets it)
replay = False  # True: train nothing; redraw this report from the finished run in out_dir (its model.h5, history.csv)

# %%
from resnet_keras import models, plots, report

report.title("Q2", models.resnet_name(depth, version), dataset,
             f"trained with {report.OPTIMIZER_NAMES.get(optimizer, optimizer)} at batch {batch_size}")

# %% [markdown]
# Each run of this notebook trains one CIFAR ResNet (depth 6n+2) with one
# optimizer and batch size on CIFAR-10 or CIFAR-100. The sweep runs every point
# of the grid in `params/q2_grid.yaml` (by default the assignment's three
# configurations: ResNet-44 (n=7) with RMSprop at batch 128 and with Adam at
# batch 64, ResNet-32 (n=5) with SGD momentum 0.9 at batch 256, on both data
# sets, each at seeds 0, 1 and 2) and compares them in its index. Below: the
# setup, the learning curves, the test set, what the run shows, and every
# epoch's figures.
#
# ## Setup

# %%
import resnet_keras as rk

rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
mean, std = data.channel_stats()
model = rk.build_resnet(depth, data.num_classes, version=version, shortcut=shortcut, weight_decay=weight_decay,
                        mean=mean, std=std)
report.note(report.setup_table(model, data, dataset=dataset, optimizer=optimizer, learning_rate=learning_rate,
                               batch_size=batch_size, epochs=epochs, weight_decay=weight_decay, augment=augment,
                               precision=precision, seed=seed, schedule=schedule, warmup_epochs=warmup_epochs,
                               momentum=momentum, nesterov=nesterov, shortcut=shortcut, version=version,
                               out_dir=out_dir))

# %% [markdown]
# ## Learning curves

# %% tags=["remove_output"]
history = rk.train(model, data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, schedule=schedule,
                   warmup_epochs=warmup_epochs, augment=augment, seed=seed, pipeline=pipeline, replay=replay)

# %%
curves = plots.plot_history(history, report.figure_title(model.name, dataset, optimizer, batch_size))

# %% [markdown]
# *Figure 1. Loss and accuracy per epoch: on the training images as they were
# augmented during the epoch (solid), and on the held-out validation images
# after it (dashed).*
#
# ## The test set
#
# The last epoch's model, which the run reports; where the run kept it
# (`best.h5`), the model of the epoch with the best validation accuracy is
# tested once beside it.

# %%
test = rk.evaluate(model, data.x_test, data.y_test)
best = rk.evaluate_best(out_dir, data)
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)

# %% [markdown]
# *Figure 2. Confusion matrix of the last epoch's model on the test set: row i
# shows where the test images of class i went, in percent of that class
# (CIFAR-100's hundred classes are drawn without labels).*
#
# ## What this run shows

# %%
report.note(report.findings(history, test, best))

# %% [markdown]
# ## Every epoch

# %%
report.note(report.training_log(history))

# %% [markdown]
# ## The run's figures
#
# Saved beside this report: the model (`model.h5`, images in, probabilities
# out), the figures, the history and a few test images (`examples/`).

# %%
results = report.finish(out_dir, model, history, test, {"curves": curves, "confusion": confusion}, precision=precision,
                        data=data, best=best)
