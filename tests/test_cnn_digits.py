"""scikit-learn's 8x8 digits with a small CNN: test accuracy, and PyTorch trains it the same.

The network is two conv + ReLU + max-pool blocks and a two-layer Dense head, trained with
Adam on a fixed stratified 75/25 split. With initialisation seeds 0-11 (and batch orders
drawn from the same seed) this setting (40 epochs, lr 3e-3, batches of 16; about half a
second of training) reached 97.8-99.3 % test accuracy (mean 98.3 %); the test uses seed 0
(98.0 %). PyTorch, from the same initial weights with the same Adam and the same batch
order, ends at the same weights (within ~1e-12 relative after all the epochs, hence at the
same accuracy; about 7x slower on this CPU); the test compares the first two epochs, which
take PyTorch a fraction of a second.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.definition.layers import Conv2d, Dense, Flatten, MaxPool2d, Sequential

EPOCHS, LR, BATCH = 40, 3e-3, 16
SNAPSHOT = 2   # epochs compared with PyTorch


def _net() -> Sequential:
    return Sequential(Conv2d(1, 8, 3, padding=1), sg.ReLU(), MaxPool2d(2),
                      Conv2d(8, 16, 3, padding=1), sg.ReLU(), MaxPool2d(2), Flatten(),
                      Dense(64, 64), sg.ReLU(), Dense(64, 10), sg.Softmax(), input_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    selection = pytest.importorskip("sklearn.model_selection")
    data = datasets.load_digits()
    X = (data.images / 16.0)[:, None]          # (n, 1, 8, 8) in [0, 1]
    return selection.train_test_split(X, data.target, test_size=0.25, random_state=0,
                                      stratify=data.target)


@pytest.fixture(scope="module")
def trained(digits):
    X_train, _, y_train, _ = digits
    model = sg.compile(_net(), loss="cross_entropy", optimizer=sg.Adam(lr=LR), seed=0)
    start = {k: v.copy() for k, v in model.params.items()}
    rng = np.random.default_rng(0)
    orders = np.stack([rng.permutation(len(X_train)) for _ in range(EPOCHS)])
    snapshot = {}

    def keep(epoch, logs):   # the weights after SNAPSHOT epochs, for the PyTorch comparison
        if epoch == SNAPSHOT:
            snapshot.update({k: v.copy() for k, v in model.params.items()})

    history = model.fit(X_train, y_train, epochs=EPOCHS, batch_size=BATCH, order=orders,
                        callbacks=[keep])
    return model, start, orders, snapshot, history


def test_small_cnn_reaches_97_percent_on_digits(digits, trained) -> None:
    _, X_test, _, y_test = digits
    model, _, _, _, history = trained
    losses = history.history["loss"]
    assert losses[-1] < 0.1 * losses[0]
    accuracy = model.evaluate(X_test, y_test)["accuracy"]
    assert accuracy >= 0.97, accuracy
    assert np.mean(model.predict(X_test) == y_test) == pytest.approx(accuracy)


@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread: on a shared, loaded CPU its spinning workers can take minutes."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def test_pytorch_trains_the_same_cnn_to_the_same_weights(digits, trained,
                                                         torch_one_thread) -> None:
    torch = torch_one_thread
    import torch.nn.functional as F

    X_train, _, y_train, _ = digits
    _, start, orders, snapshot, _ = trained
    P = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}   # float64
    opt = torch.optim.Adam(list(P.values()), lr=LR)   # same betas (0.9, 0.999), eps 1e-8
    Xt, yt = torch.tensor(X_train), torch.tensor(y_train)

    def logits(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, P["conv0.W"], P["conv0.b"], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, P["conv1.W"], P["conv1.b"], padding=1)), 2)
        h = F.relu(h.flatten(1) @ P["dense0.W"] + P["dense0.b"])   # symgrad's W is (in, out)
        return h @ P["dense1.W"] + P["dense1.b"]

    for order in orders[:SNAPSHOT]:
        for start_row in range(0, len(order), BATCH):
            rows = torch.from_numpy(order[start_row:start_row + BATCH])
            opt.zero_grad()
            F.cross_entropy(logits(Xt[rows]), yt[rows]).backward()
            opt.step()
    for name, value in snapshot.items():
        want = P[name].detach().numpy()
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-10 * np.abs(want).max(),
                                   err_msg=name)
