"""Learning on the real CIFAR-10 (skipped when the data is not on this machine)."""

import numpy as np
import pytest

import resnet_keras as rk
from conftest import real_data_dir, requires_real_data


@requires_real_data
@pytest.mark.slow
def test_resnet20_learns_on_2000_real_images(tmp_path):
    data = rk.load_dataset("cifar10", real_data_dir(), per_class=200, test_per_class=100)
    assert np.bincount(data.y_train).tolist() == [200] * 10
    rk.set_seed(0)
    model = rk.build_resnet(3)
    rk.train(model, data, str(tmp_path), epochs=4, batch_size=64, optimizer="adam", augment=False, verbose=0)
    accuracy = rk.evaluate(model, data.x_test, data.y_test)["accuracy"]
    assert accuracy > 0.25, f"test accuracy {accuracy:.3f} is not clearly above chance (0.10)"
