"""Learning on the real CIFAR-10 (skipped when the data is not on this machine)."""

import numpy as np
import pytest
from conftest import real_data_dir, requires_real_data

import resnet_keras as rk


@requires_real_data
@pytest.mark.slow
def test_resnet8_learns_on_2000_real_images(tmp_path):
    # ResNet-8 (n=1): the same blocks as ResNet-20 at 40% of its time (measured: test accuracy 0.359 and 0.366
    # for seeds 0 and 1, 50 s of training on the 2-core machine).
    data = rk.load_dataset("cifar10", real_data_dir(), per_class=200, test_per_class=100)
    assert np.bincount(data.y_train).tolist() == [200] * 10
    rk.set_seed(0)
    model = rk.build_resnet(8)
    rk.train(model, data, str(tmp_path), epochs=4, batch_size=64, optimizer="adam", augment=False, verbose=0)
    accuracy = rk.evaluate(model, data.x_test, data.y_test)["accuracy"]
    assert accuracy > 0.25, f"test accuracy {accuracy:.3f} is not clearly above chance (0.10)"
