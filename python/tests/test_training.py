"""Trainer and Keras' fit train the same weights as `lmkit finetune` with the same settings
(the same trainer underneath); Ctrl-C leaves a checkpoint that resumes."""

import os
import signal
import threading

import numpy as np
import pytest

from conftest import TINY, cli
from lmkit import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, load_dataset
from lmkit.optimizers import Adam


def encoded(splits, **tok_kw):
    tok = AutoTokenizer.from_pretrained(TINY)
    dd = load_dataset(str(splits))
    return dd.map(lambda b: tok(b["text"], **tok_kw), batched=True, batch_size=None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`lmkit finetune` on the tiny model: 2 epochs, batch 8, Adam 5e-5, constant rate, seed 42."""
    from conftest import write_splits

    tmp = tmp_path_factory.mktemp("ref")
    data = write_splits(tmp / "data")
    run = tmp / "run"
    cli("finetune", "--model", TINY, "--dataset", str(data), "--epochs", "2", "--batch-size", "8",
        "--lr", "5e-5", "--seed", "42", "--output", str(run))
    return data, AutoModelForSequenceClassification.from_pretrained(str(run / "model")).state_dict()


def assert_same_weights(got, want):
    assert got.keys() == want.keys()
    for k in want:
        # Same data order, same kernels, same optimizer arithmetic: bit-for-bit equal.
        assert np.array_equal(got[k], want[k]), k


def test_trainer_equals_lmkit_finetune(reference, tmp_path):
    data, want = reference
    enc = encoded(data, truncation=True, max_length=128)
    model = AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=8,
                             learning_rate=5e-5, lr_scheduler_type="constant", max_grad_norm=None, seed=42,
                             eval_strategy="epoch", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=enc["train"], eval_dataset=enc["validation"])
    out = trainer.train()
    assert out.global_step == 6 and np.isfinite(out.training_loss)
    assert_same_weights(model.state_dict(), want)
    assert model.id2label == {0: "neg", 1: "pos"}
    metrics = trainer.evaluate()
    assert set(metrics) >= {"eval_loss", "eval_accuracy"}
    pred = trainer.predict(enc["test"])
    assert pred.predictions.shape == (24, 2) and pred.label_ids.tolist() == enc["test"]["label"].tolist()
    trainer.save_model(str(tmp_path / "saved"))
    again = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "saved"))
    assert again.id2label == {0: "neg", 1: "pos"}
    assert_same_weights(again.state_dict(), want)


def test_course_padding_trains_the_same(reference, tmp_path):
    # The course tokenizes with padding=True over the whole split; batches are cut back to
    # their own longest row by the attention mask, so the weights do not change.
    data, want = reference
    enc = encoded(data, padding=True, truncation=True)
    model = AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=8,
                             lr_scheduler_type="constant", max_grad_norm=None, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=enc["train"]).train()
    assert_same_weights(model.state_dict(), want)


def test_keras_fit_equals_lmkit_finetune(reference):
    data, want = reference
    enc = encoded(data, padding=True, truncation=True)
    cols = ["input_ids", "attention_mask"]
    train = enc["train"].to_tf_dataset(columns=cols, label_cols="label", shuffle=True, batch_size=8)
    val = enc["validation"].to_tf_dataset(columns=cols, label_cols="label", shuffle=False, batch_size=8)
    model = AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2)
    model.compile(optimizer=Adam(learning_rate=5e-5), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(train, validation_data=val, epochs=2, batch_size=64, verbose=0)
    assert len(hist.history["loss"]) == 2 and len(hist.history["val_accuracy"]) == 2
    assert_same_weights(model.state_dict(), want)
    test = enc["test"].to_tf_dataset(columns=cols, label_cols="label", shuffle=False, batch_size=8)
    logits = model.predict(test).logits
    assert logits.shape == (24, 2)
    loss, acc = model.evaluate(test)
    assert acc == float((logits.argmax(1) == enc["test"]["label"]).mean())


def test_ctrl_c_stops_with_a_checkpoint_that_resumes(reference, tmp_path):
    data, _ = reference
    enc = encoded(data, truncation=True)
    out = tmp_path / "out"
    args = TrainingArguments(output_dir=str(out), num_train_epochs=400, per_device_train_batch_size=8,
                             save_steps=10**6, disable_tqdm=True)
    model = AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2)
    trainer = Trainer(model=model, args=args, train_dataset=enc["train"])
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    timer.join()
    ckpts = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-"))
    assert ckpts, "the interrupt writes a checkpoint"
    step = ckpts[-1]
    # A fresh run in that folder is refused; a changed setting is refused by name; resuming
    # continues from the interrupted step (max_steps, not a run setting, ends it soon).
    with pytest.raises(ValueError, match="resume_from_checkpoint=True"):
        Trainer(model=model, args=args, train_dataset=enc["train"]).train()

    def fresh(**kw):
        a = TrainingArguments(output_dir=str(out), num_train_epochs=400, per_device_train_batch_size=8,
                              save_steps=10**6, disable_tqdm=True, **kw)
        return Trainer(model=AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2), args=a,
                       train_dataset=enc["train"])

    with pytest.raises(RuntimeError, match="lr"):
        fresh(learning_rate=1e-3).train(resume_from_checkpoint=True)
    resumed = fresh(max_steps=step + 2).train(resume_from_checkpoint=True)
    assert resumed.global_step == step + 2 and resumed.metrics["stopped"] == "max_steps"


def test_training_bad_inputs(reference, tmp_path):
    data, _ = reference
    raw = load_dataset(str(data))
    model = AutoModelForSequenceClassification.from_pretrained(TINY, num_labels=2)
    with pytest.raises(ValueError, match="input_ids"):
        Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "a")), train_dataset=raw["train"]).train()
    enc = encoded(data, truncation=True)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path / "b"), per_device_train_batch_size=0),
                train_dataset=enc["train"]).train()
    with pytest.raises(ValueError, match="learning_rate"):
        Adam(learning_rate=-1)
    with pytest.raises(TypeError, match="Dataset"):
        model.fit([1, 2, 3])
    with pytest.raises(FileNotFoundError):
        AutoModelForSequenceClassification.from_pretrained("no-such-org/no-such-model", num_labels=2)
