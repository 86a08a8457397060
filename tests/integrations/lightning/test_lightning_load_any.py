"""`registrum.load_model` on a Lightning version: the module in eval mode, called on arrays
and lists of rows of the example input's width."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lightning_models import FEATURES, Data, Regressor, trainer
from registrum_lightning import RegistrumCallback

import registrum
from targets import Target


def test_the_module_predicts_on_arrays_and_rows(target: Target, tmp_path: Path) -> None:
    callback = RegistrumCallback(project="p", register_as="reg", store=target.store)
    module = Regressor()
    trainer(tmp_path, [callback], max_epochs=1).fit(module, datamodule=Data())
    model = registrum.load_model("reg@1", store=target.store)
    assert model.flavor == "lightning" and not model.native.training
    x = np.random.default_rng(0).normal(size=(6, FEATURES)).astype("float32")
    module.eval()
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x.tolist()), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x[0].tolist()), expected[:1], rtol=1e-6)
    with pytest.raises(registrum.InvalidArgument, match=rf"the model takes \(N, {FEATURES}\)"):
        model.predict(x[:, :2])


def test_a_checkpoint_logged_by_hand_names_its_class(target: Target, tmp_path: Path) -> None:
    module = Regressor()
    fit = trainer(tmp_path, [], max_epochs=1)
    fit.fit(module, datamodule=Data())
    fit.save_checkpoint(tmp_path / "last.ckpt")
    module.eval()
    x = np.random.default_rng(0).normal(size=(3, FEATURES)).astype("float32")
    with torch.no_grad():
        expected = module(torch.as_tensor(x)).numpy()
    with registrum.init(project="p", store=target.store, capture_environment=False) as run:
        logged = run.log_model(
            tmp_path / "last.ckpt",
            flavor="lightning",
            metadata={"module_class": "lightning_models.Regressor"},
        )
        run.register_model("named", model=logged)
    other = trainer(tmp_path / "other", [], max_epochs=1)
    other.fit(Regressor(), datamodule=Data())
    other.save_checkpoint(tmp_path / "later.ckpt")
    with registrum.init(project="p", store=target.store, capture_environment=False) as run:
        run.register_model("nameless", path=tmp_path / "later.ckpt", flavor="lightning")
    model = registrum.load_model("named@1", store=target.store)
    assert type(model.native) is Regressor and not model.native.training
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="does not say which LightningModule it is"):
        registrum.load_model("nameless@1", store=target.store)
