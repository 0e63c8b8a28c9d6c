"""Train a ResNet-20 on CIFAR-10 for one epoch: a check that everything is in place."""

import resnet_keras as rk


def main():
    data = rk.load_dataset("cifar10", per_class=500, test_per_class=100, validation_split=0.1)
    rk.set_seed(0)
    model = rk.build_resnet(20, num_classes=data.num_classes)
    print(f"ResNet-20: {rk.count_params(model):,} parameters, {len(data.y_train)} training images")
    rk.train(model, data, "outputs/demo", epochs=1, batch_size=128, optimizer="adam")
    print(f"test accuracy after one epoch: {rk.evaluate(model, data.x_test, data.y_test)['accuracy']:.3f}")


if __name__ == "__main__":
    main()
