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
weight_decay = 1e-4  # coupled L2 on the kernels
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
# sets) and compares them all in `outputs/index.html`.

# %% [markdown]
# ## Setup and data

# %%
import resnet_keras as rk

rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
print(f"precision: {precision}, devices: {devices}")
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
mean, std = data.channel_stats()
print(f"{dataset}: {data.describe()}")

# %% [markdown]
# ## Model

# %%
model = rk.build_resnet(depth, data.num_classes, version=version, shortcut=shortcut, weight_decay=weight_decay,
                        mean=mean, std=std)
print(f"{model.name}: {rk.count_params(model):,} trainable parameters; {optimizer}, batch {batch_size}")

# %% [markdown]
# ## Train

# %%
history = rk.train(model, data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, schedule=schedule,
                   warmup_epochs=warmup_epochs, augment=augment, seed=seed, pipeline=pipeline)
curves = plots.plot_history(history, f"{model.name}, {optimizer}, batch {batch_size}, {dataset}")

# %% [markdown]
# ## Evaluate and save
#
# The last epoch's model, which the run reports, and the model of the epoch with
# the best validation accuracy (`best.h5`), tested once for comparison; the
# confusion matrix is the last epoch's model's.

# %%
test = rk.evaluate(model, data.x_test, data.y_test)
print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f}")
best = rk.evaluate_best(out_dir, data)  # the best-validation epoch's model (best.h5), for comparison
if best:
    print(f"best-validation model: test accuracy {best['accuracy']:.4f}, test loss {best['loss']:.4f}")
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)
results = report.finish(out_dir, model, history, test, {"curves": curves, "confusion": confusion}, precision=precision,
                        data=data, best=best)
