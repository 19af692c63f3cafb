"""Teaching visuals drawn from the project's own code (`python -m src.visualize <topic>`).

One module per topic; each has `render(cfg, output)`, which draws its figures (or text) and hands
them to `output` (PNG files, and the run's TensorBoard when `run_dir=` is given). The computing
parts (kernels, pooling, gradient norms, activation derivatives) are plain functions the tests call.

    activations  sigmoid, tanh, ReLU, Leaky ReLU, softmax and their autograd derivatives; per-layer
                 gradient norms of a deep sigmoid MLP vs a ReLU MLP on real data (vanishing gradients)
    filters      notes 4's classic kernels on a real image, notes 4's 5x5 example, notes 0's
                 diagonal kernel applied three times
    pooling      max, average, min and overlapped pooling; resize vs 2x2 max-pool
    cnn          a trained CNN's first-layer filters and the feature maps of each conv layer
    cam          where a trained CNN looks: Grad-CAM and integrated gradients over image files (inputs=)
    iris         notes 0's iris scatter plot with a trained softmax regression's decision regions
    xor          the XOR MLP's decision boundary vs the perceptron's line
    datasets     notes 3's data-set table, generated from conf/data/*.yaml (Markdown)
"""

TOPICS = ("activations", "filters", "pooling", "cnn", "cam", "iris", "xor", "datasets")
