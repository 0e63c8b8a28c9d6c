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
# # Q3: transfer learning with ResNet-50
#
# A ResNet-50 pretrained on ImageNet (`keras.applications`, without its top) is
# frozen and used as a feature extractor; a small head (global average pooling,
# Dense 256 with ReLU, softmax) is trained on CIFAR. An optional second stage
# unfreezes the top of the base and fine-tunes it with a lower learning rate.
# The sweep trains the head with RMSprop, Adam and SGD (momentum 0.9) on
# CIFAR-10 and CIFAR-100.

# %% tags=["parameters"]
dataset = "cifar10"  # cifar10 or cifar100
label_mode = "fine"  # cifar100 only: fine (100 classes) or coarse (20)
data_dir = None  # folder with the official CIFAR python layout; None: $RESNET_KERAS_DATA or Keras' cache
per_class = None  # train only on the first k images of each class (None: all)
test_per_class = None  # evaluate on the first k test images of each class (None: all)
validation_split = 0.1  # fraction of each class held out for validation
weights = "imagenet"  # imagenet, none (random initialisation) or the path of a ResNet-50 no-top weights file
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
fine_tune_fraction = 0.25  # fraction of the base's layers unfrozen for fine-tuning
fine_tune_learning_rate = 1e-5  # learning rate while fine-tuning
seed = 0  # seed for weights, data order and augmentation
precision = "auto"  # auto, float32, mixed_float16 or mixed_bfloat16; auto: mixed_float16 on a GPU,
#   mixed_bfloat16 on a CPU with bfloat16 instructions (AVX512-BF16, AMX), else float32
devices = 1  # devices to train on (JAX backend): each batch is split over them, the recipe stays; "all": every GPU
out_dir = "outputs/q3/dev"  # where the artefacts go (the sweep sets it)

# %% [markdown]
# ## Setup and data

# %%
import pandas as pd

import resnet_keras as rk
from resnet_keras import plots, products, report

rk.set_seed(seed)
precision = rk.set_precision(precision)
devices = rk.set_devices(devices)
print(f"precision: {precision}, devices: {devices}")
data = rk.load_dataset(dataset, data_dir, label_mode=label_mode, validation_split=validation_split,
                       per_class=per_class, test_per_class=test_per_class)
print(f"{dataset}: {data.describe()}")

# %% [markdown]
# ## Model: frozen ResNet-50 base and a new head

# %%
base_weights = None if weights == "none" else weights
weights_used = {"imagenet": "ImageNet (keras.applications)", None: "none: random initialisation"}.get(
    base_weights, f"local file {base_weights}")
report.note(f"**Weights of the ResNet-50 base: {weights_used}.**"
            + ("" if base_weights else " Without pretrained weights the frozen base extracts random "
               "features, so accuracy here says nothing about transfer learning."))
model = rk.build_transfer_model(data.num_classes, weights=base_weights, resize=resize, head_units=head_units,
                                dropout=dropout)
print(f"trainable parameters: {rk.count_params(model):,} of {model.count_params():,}")

# %% [markdown]
# ## Train the head

# %% [markdown]
# With `cache_features`, the frozen base runs once per image and the head trains
# on the stored features: each epoch then costs only the head, but the images
# cannot be augmented.

# %%
if cache_features:
    report.note("**Head trained on cached base features: no augmentation.**")
    trainee, train_data = rk.cache_features(model, data)
else:
    trainee, train_data = model, data
history = rk.train(trainee, train_data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, momentum=momentum, augment=augment and not cache_features,
                   seed=seed, save_best=False)

# %% [markdown]
# ## Fine-tune the top of the base (when `fine_tune_epochs` > 0)

# %%
if fine_tune_epochs:
    opened = rk.unfreeze_top(model, fine_tune_fraction)
    print(f"fine-tuning {opened} layers of the base, learning rate {fine_tune_learning_rate}")
    tuned = rk.train(model, data, f"{out_dir}/{products.FINETUNE}", epochs=fine_tune_epochs, batch_size=batch_size,
                     optimizer=optimizer, learning_rate=fine_tune_learning_rate, momentum=momentum,
                     augment=augment, seed=seed, save_best=False)
    history = pd.concat([history, tuned.assign(epoch=tuned["epoch"] + epochs)], ignore_index=True)
curves = plots.plot_history(history, f"ResNet-50 transfer, {optimizer}, {dataset}")

# %% [markdown]
# ## Evaluate and save

# %%
if cache_features and not fine_tune_epochs:  # the same predictions as the whole model, without the base
    test = rk.evaluate(trainee, train_data.x_test, data.y_test)
else:
    test = rk.evaluate(model, data.x_test, data.y_test, batch_size=256)
print(f"test accuracy {test['accuracy']:.4f}")
confusion = plots.plot_confusion(data.y_test, test["predictions"], data.class_names)
results = report.finish(out_dir, model, history, test, {"curves": curves, "confusion": confusion}, weights=weights_used,
              augment=augment and not cache_features, precision=precision, data=data)
