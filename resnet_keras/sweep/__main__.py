"""`python -m resnet_keras.sweep`: the sweep's command line (`runner.main`)."""

import sys

from resnet_keras.sweep.runner import main

sys.exit(main())
