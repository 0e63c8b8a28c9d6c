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
# # Q3: transfer learning
#
# The parameters below choose the pretrained base (`weights`), the optimizer of
# the head and the data set; the report of each run is titled with them.

# %% tags=["parameters"]
dataset = "cifar10"  # cifar10 or cifar100
label_mode = "fine"  # cifar100 only: fine (100 classes) or coarse (20)
data_dir = None  # folder with the official CIFAR python layout; None: $RESNET_KERAS_DATA or Keras' cache
per_class = None  # train only on the first k images of each class (None: all)
test_per_class = None  # evaluate on the first k test images of each class (None: all)
validation_split = 0.1  # fraction of each class held out for validation
weights = "imagenet"  # imagenet, none (random init), a ResNet-50 no-top weights file, or a model.h5 of this suite
#   (e.g. a committed Q2 run's): that network up to its global pooling becomes the base
resize = None  # resize 32x32 inputs to this square side before the base (e.g. 224), None to keep 32
head_units = 256  # width of the hidden dense layer of the head
dropout = 0.0  # dropout rate in the head
optimizer = "adam"  # sgd, adam or rmsprop
learning_rate = 0.001  # learning rate of the head
momentum = 0.9  # sgd only
epochs = 20  # epochs of head training with the base frozen
batch_size = 128  # images per step
augment = True  # pad-4 random crop and horizontal flip (ignored with cache_features)
cache_features = False  # run the frozen base once per image and train the head on its features (no augmentation)
fine_tune_epochs = 0  # epochs of fine-tuning after head training (0: no fine-tuning)
fine_tune_fraction = 0.25  # fraction of the base's layers, from the top, unfrozen for fine-tuning
fine_tune_learning_rate = 1e-5  # learning rate while fine-tuning
seed = 0  # seed for weights, data order and augmentation
precision = "auto"  # auto, float32, mixed_float16 or mixed_bfloat16; auto: mixed_float16 on a GPU,
#   mixed_bfloat16 on a CPU with bfloat16 instructions (AVX512-BF16, AMX), else float32
devices = 1  # devices to train on (JAX backend): each batch is split over them, the recipe stays; "all": every GPU
out_dir = "outputs/q3/dev"  # where the artefacts go (the sweep sets it)
replay = False  # True: train nothing; redraw this report from the finished run in out_dir (its model.h5, history.csv)

# %%
import resnet_keras as rk
from resnet_keras import plots, report

base_weights = None if weights == "none" else weights
base_words = rk.transfer.describe_weights(base_weights)
report.title("Q3", "pretrained network with a new head", dataset,
             f"trained with {report.OPTIMIZER_NAMES.get(optimizer, optimizer)}")

# %% [markdown]
# Transfer learning: a pretrained network, frozen, extracts features, and a
# small head (global average pooling, a dense layer of `head_units` with ReLU,
# softmax) learns the new classes from them. An optional second stage unfreezes
# the top of the base and fine-tunes it at a lower learning rate. Below: the
# setup, the learning curves, the test set, what the run shows, and every
# epoch's figures.
#
# ## Setup

# %%
rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
model = rk.build_transfer_model(data.num_classes, weights=base_weights, resize=resize, head_units=head_units,
                                dropout=dropout)
stages = [("base", f"{base_words}; frozen, in inference mode"),
          ("head training", "on the base's features computed once per image (no augmentation)" if cache_features
           else "on the images through the frozen base"),
          ("fine-tuning", f"{fine_tune_epochs} epoch{'s' * (fine_tune_epochs > 1)} of the top "
                          f"{100 * fine_tune_fraction:.0f}% of the base's layers (batch norms frozen), learning "
                          f"rate {fine_tune_learning_rate:g}"
           if fine_tune_epochs else "none")]
report.note(report.setup_table(model, data, dataset=dataset, optimizer=optimizer, learning_rate=learning_rate,
                               batch_size=batch_size, epochs=epochs, weight_decay=0, augment=augment,
                               precision=precision, seed=seed, momentum=momentum, dropout=dropout, out_dir=out_dir,
                               network=f"pretrained base + head (Dense {head_units}, ReLU, softmax)", extra=stages))

# %% [markdown]
# ## Learning curves
#
# With `cache_features`, the frozen base runs once per image and the head trains
# on the stored features: each epoch then costs only the head, but the images
# cannot be augmented. Fine-tuning trains on the images, augmented.

# %% tags=["remove_output"]
history = rk.train_transfer(model, data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                            learning_rate=learning_rate, momentum=momentum, augment=augment, seed=seed,
                            cache_features=cache_features, fine_tune_epochs=fine_tune_epochs,
                            fine_tune_fraction=fine_tune_fraction, fine_tune_learning_rate=fine_tune_learning_rate,
                            replay=replay)

# %%
curves = plots.plot_history(history, f"Transfer to {report.DATASET_NAMES.get(dataset, dataset)}, head trained "
                                     f"with {report.OPTIMIZER_NAMES.get(optimizer, optimizer)}")

# %% [markdown]
# *Figure 1. Loss and accuracy per epoch: head training, then fine-tuning where
# the run has it (the epochs after the head's); on the training images (solid)
# and the held-out validation images (dashed).*
#
# ## The test set

# %%
test = rk.evaluate(model, data.x_test, data.y_test, batch_size=256)
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)

# %% [markdown]
# *Figure 2. Confusion matrix of the final model on the test set: row i shows
# where the test images of class i went, in percent of that class.*
#
# ## What this run shows

# %%
report.note(report.findings(history, test))

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
results = report.finish(out_dir, model, history, test, {"curves": curves, "confusion": confusion}, weights=base_words,
                        augment=augment and not cache_features, precision=precision, data=data)
