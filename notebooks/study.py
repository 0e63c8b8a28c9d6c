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

# %% [markdown]
# # ResNet study: one network, trained and measured
#
# One run of the study behind the ResNet paper's CIFAR experiments and their
# best-known follow-ups. A network is named by its family and depth:
#
# - `resnet`: the CIFAR ResNet of He et al. (2015, section 4.2), 6n+2 weight
#   layers (20, 32, 44, 56, 110), post-activation blocks;
# - `plain`: the same network without shortcuts, the paper's plain baseline;
# - `preact`: pre-activation blocks (He et al., 2016), optionally wider;
# - `imagenet`: ResNet-18/34/50 as in torchvision, with a CIFAR stem (3x3
#   convolution, no max-pool).
#
# The params files `study_paper`, `study_architectures` and `study_preact_cifar100` run
# it for every network of their study; the sweep's index compares the runs
# (the paper's table, training-error curves of plain against residual
# networks, accuracy against training time). This report shows one network:
# its learning curves, test error, confusion matrix and inference speed.

# %% tags=["parameters"]
dataset = "cifar10"  # cifar10 or cifar100
label_mode = "fine"  # cifar100 only: fine (100 classes) or coarse (20)
data_dir = None  # folder with the official CIFAR python layout; None: $RESNET_KERAS_DATA or Keras' cache
per_class = None  # train only on the first k images of each class (None: all)
test_per_class = None  # evaluate on the first k test images of each class (None: all)
validation_split = 0.1  # fraction of each class held out for validation
family = "resnet"  # resnet, plain, preact (CIFAR, depth 6n+2) or imagenet (depth 18, 34 or 50)
depth = 20  # weight layers: 20, 32, 44, 56, 110, ... for CIFAR families; 18, 34, 50 for imagenet
width = 1  # filter multiplier (CIFAR families)
shortcut = "zero_pad"  # CIFAR families: zero_pad (the paper's option A) or projection (1x1 conv)
dropout = 0.0  # dropout rate before the classifier
weight_decay = 1e-4  # coupled L2 on every weight (the paper: 1e-4)
optimizer = "sgd"  # sgd, adam or rmsprop
learning_rate = 0.1  # initial learning rate
momentum = 0.9  # sgd only
nesterov = False  # sgd only
schedule = "step"  # constant, step (x0.1 at 50% and 75%: the paper's 32k and 48k of 64k iterations) or cosine
warmup_epochs = 0  # warm-up epochs (the paper warms ResNet-110 up for about 400 iterations)
warmup = "linear"  # linear (up to learning_rate) or constant (learning_rate / 10, the paper's ResNet-110 warm-up)
epochs = 182  # training epochs (the paper's 64k iterations at batch 128: 182 on 45k images, 164 on all 50k)
batch_size = 128  # images per step
augment = True  # pad-4 random crop and horizontal flip
pipeline = "auto"  # where batches are made: auto (device on a GPU, else host), host, device, resident (docs/sweep.md)
steps_per_execution = 1  # training steps per compiled call (TensorFlow, JAX; a divisor of the epoch's steps)
seed = 0  # seed for weights, data order and augmentation
precision = "auto"  # auto, float32, mixed_float16 or mixed_bfloat16; auto: mixed_float16 on a GPU,
#   mixed_bfloat16 on a CPU with bfloat16 instructions (AVX512-BF16, AMX), else float32
devices = 1  # devices to train on (JAX backend): each batch is split over them, the recipe stays; "all": every GPU
out_dir = "outputs/study/dev"  # where the artefacts go (the sweep sets it)
replay = False  # True: train nothing; redraw this report from the finished run in out_dir (its model.h5, history.csv)

# %% [markdown]
# ## Setup

# %%
import resnet_keras as rk
from resnet_keras import plots, report

rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
mean, std = data.channel_stats()
model = rk.build_model(family, depth, data.num_classes, width=width, shortcut=shortcut, dropout=dropout,
                       weight_decay=weight_decay, mean=mean, std=std)
report.note(report.setup_table(model, data, dataset=dataset, optimizer=optimizer, learning_rate=learning_rate,
                               batch_size=batch_size, epochs=epochs, weight_decay=weight_decay, augment=augment,
                               precision=precision, seed=seed, schedule=schedule, warmup_epochs=warmup_epochs,
                               momentum=momentum, nesterov=nesterov, shortcut=shortcut, plain=family == "plain",
                               dropout=dropout, version="v2" if family == "preact" else "v1", out_dir=out_dir))

# %% [markdown]
# ## Learning curves

# %% tags=["remove_output"]
history = rk.train(model, data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, schedule=schedule,
                   warmup_epochs=warmup_epochs, warmup=warmup, augment=augment, seed=seed, pipeline=pipeline,
                   steps_per_execution=steps_per_execution, replay=replay)

# %%
curves = plots.plot_history(history, report.figure_title(model.name, dataset, optimizer, batch_size))

# %% [markdown]
# *Figure 1. Loss and accuracy per epoch: on the training images as they were
# augmented during the epoch (solid), and on the held-out validation images
# after it (dashed), where the run holds some out.*
#
# ## The test set

# %%
test = rk.evaluate(model, data.x_test, data.y_test)
print(f"test error {100 * (1 - test['accuracy']):.2f}% (accuracy {test['accuracy']:.4f}), "
      f"test loss {test['loss']:.4f}")
best = rk.evaluate_best(out_dir, data)  # with a validation split: the best-validation epoch's model (best.h5)
paper = report.paper_error(dataset, family, depth, shortcut)
if paper is not None:
    print(f"the ResNet paper's table: {paper:.2f}% for ResNet-{depth} on CIFAR-10")
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)

# %% [markdown]
# *Figure 2. Confusion matrix of the last epoch's model on the test set: row i
# shows where the test images of class i went, in percent of that class.*
#
# ## What this run shows

# %%
report.note(report.findings(history, test, best))

# %% [markdown]
# ## Inference speed
#
# Latency: the median time to classify one image; throughput: images per
# second in batches of 500, on this run's machine. Measured on the network as
# deployed, with each batch norm folded into the convolution before it
# (`rk.inference_model`: same predictions, less work).

# %%
speed = rk.measure_inference(rk.inference_model(model), data.x_test)
print(f"latency {speed['latency_ms']:.2f} ms per image, throughput {speed['throughput_img_s']:,.0f} images/s")

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
                        data=data, best=best, **speed)
