"""The real-music benchmark's consistency rules (``analysis_real.py``, ``extra_dev_copies.py``)."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH / "realmusic"))
sys.path.insert(0, str(BENCH))

import analysis_real  # noqa: E402
import dev_probe  # noqa: E402
import extra_dev_copies  # noqa: E402
import tempocnn_probe  # noqa: E402


@pytest.mark.parametrize(("original", "copy", "factor", "expected"), [
    (90.0, 80.9, 0.9, True),    # read at the stretched tempo (81), within 4 %
    (90.0, 77.0, 0.9, False),   # 5 % under the stretched tempo
    (160.0, 89.6, 1.12, False),  # the copy read at half tempo: an octave flip
    (160.0, 179.2, 1.12, True),
    (None, None, 1.12, True),   # beatless both times
    (None, 100.0, 0.9, False),  # beatless once
    (100.0, None, 0.9, False),
])
def test_stretch_consistency_rule(original, copy, factor, expected):
    assert analysis_real.stretch_consistent(original, copy, factor) is expected


def test_stretch_rule_tolerance_is_four_percent_of_the_expected_tempo():
    assert analysis_real.stretch_consistent(100.0, 100.0 * 1.12 * 1.039, 1.12)
    assert not analysis_real.stretch_consistent(100.0, 100.0 * 1.12 * 1.041, 1.12)
    assert analysis_real.stretch_consistent(100.0, 100.0 * 0.85 * 0.961, 0.85)
    assert not analysis_real.stretch_consistent(100.0, 100.0 * 0.85 * 0.959, 0.85)


@pytest.mark.parametrize(("original", "copy", "semitones", "expected"), [
    ("A minor", "B minor", 2, True),
    ("A minor", "D major", 2, False),   # the relative major of the right key
    ("A minor", "B major", 2, False),   # right tonic, wrong mode
    ("C major", "A major", -3, True),
    ("B major", "C♯ major", 2, True),   # wraps round the octave
    (None, None, 2, True),
    (None, "C major", 2, False),
])
def test_shift_consistency_rule(original, copy, semitones, expected):
    assert analysis_real.shift_consistent(original, copy, semitones) is expected


def test_pairs_apply_both_rules_to_each_copy_against_its_original():
    rows = [
        {"group": "g1", "file": "g1__orig.ogg", "variant": "orig", "stretch": "1.0", "shift": "0"},
        {"group": "g1", "file": "g1__tempo0.9.ogg", "variant": "tempo0.9", "stretch": "0.9", "shift": "0"},
        {"group": "g1", "file": "g1__tempo1.12.ogg", "variant": "tempo1.12", "stretch": "1.12", "shift": "0"},
        {"group": "g1", "file": "g1__pitch+2.ogg", "variant": "pitch+2", "stretch": "1.0", "shift": "2"},
        {"group": "g1", "file": "g1__pitch-3.ogg", "variant": "pitch-3", "stretch": "1.0", "shift": "-3"},
    ]
    res = {
        "g1__orig.ogg": (120.0, "E minor", 0.9, 0.8),
        "g1__tempo0.9.ogg": (108.5, "E minor", 0.9, 0.8),
        "g1__tempo1.12.ogg": (67.2, "E minor", 0.9, 0.8),   # half of 134.4
        "g1__pitch+2.ogg": (120.0, "F♯ minor", 0.9, 0.8),
        "g1__pitch-3.ogg": (120.0, "C♯ minor", 0.9, 0.8),   # E minor down 3 semitones
    }
    got = [(kind, ok) for kind, ok, _, _ in analysis_real._pairs(rows, res)]
    assert got == [("stretch", True), ("stretch", False), ("shift", True), ("shift", True)]
    res["g1__pitch-3.ogg"] = (120.0, "E major", 0.9, 0.8)
    assert [ok for kind, ok, _, _ in analysis_real._pairs(rows, res) if kind == "shift"] == [True, False]


def test_extra_copies_cover_every_original_with_each_kind_once():
    originals = [{"file": "m21_x__clean.ogg"}, {"file": "rec_y__orig.ogg"}]
    jobs = extra_dev_copies.copy_jobs(originals, ("shift", "stretch"))
    per = len(extra_dev_copies.SHIFTS) + len(extra_dev_copies.STRETCHES)
    assert len(jobs) == 2 * per
    names = [dst for *_, dst in jobs]
    assert len(set(names)) == len(names)  # no copy overwrites another
    assert ("rec_y__orig.ogg", "stretch", 1.2, "rec_y__orig__t1.2.ogg") in jobs
    assert ("m21_x__clean.ogg", "shift", -5, "m21_x__clean__x-5.ogg") in jobs
    only = extra_dev_copies.copy_jobs(originals, ("stretch",))
    assert {kind for _, kind, _, _ in only} == {"stretch"}
    assert len(only) == 2 * len(extra_dev_copies.STRETCHES)


def test_rubberband_copies_take_the_corpus_amounts_beside_its_own_sox_copies():
    import build

    originals = [{"file": "rec_y__orig.ogg", "group": "rec:y", "variant": "orig"},
                 {"file": "m21_x__clean.ogg", "group": "m21:x", "variant": "clean"}]
    jobs = extra_dev_copies.copy_jobs(originals, ("shift", "stretch"), "rubberband")
    assert sorted(a for _, kind, a, _ in jobs if kind == "stretch") == sorted(2 * list(build.STRETCHES))
    assert sorted(a for _, kind, a, _ in jobs if kind == "shift") == sorted(2 * list(build.SHIFTS))
    sox = {dst for *_, dst in extra_dev_copies.copy_jobs(originals, ("shift", "stretch"))}
    assert ("rec_y__orig.ogg", "shift", -3, "rec_y__orig__rbx-3.ogg") in jobs
    assert not sox & {dst for *_, dst in jobs}  # neither tool's copy overwrites the other's
    with pytest.raises(ValueError, match="tool 'ffmpeg': expected one of sox, rubberband"):
        extra_dev_copies.copy_jobs(originals, ("shift",), "ffmpeg")

    def row(file: str, group: str, variant: str, stretch: str = "1.0", shift: str = "0") -> dict:
        return {"file": file, "group": group, "variant": variant, "stretch": stretch, "shift": shift}

    rows = originals + [
        row("rec_y__orig__tempo0.9.ogg", "rec:y", "tempo0.9", stretch="0.9"),
        row("rec_y__orig__pitch+2.ogg", "rec:y", "pitch+2", shift="2"),
        row("m21_x__lofi.ogg", "m21:x", "lofi"),
        row("rec_z__orig__tempo0.9.ogg", "rec:z", "tempo0.9", stretch="0.9"),  # not one of the originals
    ]
    assert extra_dev_copies.corpus_copies(rows, originals, ("shift", "stretch")) == [
        ("rec_y__orig.ogg", "stretch", 0.9, "rec_y__orig__tempo0.9.ogg"),
        ("rec_y__orig.ogg", "shift", 2, "rec_y__orig__pitch+2.ogg"),
    ]
    assert extra_dev_copies.corpus_copies(rows, originals, ("shift",)) == [
        ("rec_y__orig.ogg", "shift", 2, "rec_y__orig__pitch+2.ogg")]


def test_copy_labels_let_analysis_real_score_the_copies_against_their_originals(tmp_path):
    originals = [{"file": "rec_y__orig.ogg", "group": "rec:y", "source": "recording", "split": "holdout",
                  "variant": "orig", "bpm": "", "key": ""},
                 {"file": "m21_x__clean.ogg", "group": "m21:x", "source": "score", "split": "dev",
                  "variant": "clean", "bpm": "96.0", "key": "G major"}]
    jobs = extra_dev_copies.copy_jobs(originals, ("shift", "stretch"), "rubberband")
    extra_dev_copies.copy_labels(originals, jobs, (tmp_path / "labels.csv", tmp_path / "kept.csv"))
    assert (tmp_path / "kept.csv").read_text() == (tmp_path / "labels.csv").read_text()
    rows = analysis_real.read_rows(tmp_path / "labels.csv", "all")
    assert [r["file"] for r in rows[:2]] == ["rec_y__orig.ogg", "m21_x__clean.ogg"]
    assert rows[1]["bpm"] == "96.0" and rows[1]["key"] == "G major" and rows[0]["bpm"] == ""
    res = {r["file"]: (100.0, "A minor", 0.5, 0.5) for r in rows}
    res["rec_y__orig__rbt0.9.ogg"] = (90.0, "A minor", 0.5, 0.5)  # moved along with the stretch
    res["rec_y__orig__rbx+2.ogg"] = (100.0, "B minor", 0.5, 0.5)  # moved along with the shift
    got = {(kind, v) for kind, ok, _, v in analysis_real._pairs(rows, res) if ok}
    assert got == {("stretch", (90.0, "A minor", 0.5, 0.5)), ("shift", (100.0, "B minor", 0.5, 0.5))}
    assert len(list(analysis_real._pairs(rows, res))) == len(jobs) == 8
    # The originals are linked beside the copies, where analysis_real.py --corpus looks for every file.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for r in originals:
        (corpus / r["file"]).write_bytes(b"audio")
    import build

    paths = [corpus / r["file"] for r in originals]
    assert build.link_files(paths, corpus / "copies") == [corpus / "copies" / r["file"] for r in originals]
    build.link_files(paths, corpus / "copies")  # again: nothing changes
    for r in originals:
        link = corpus / "copies" / r["file"]
        assert link.is_symlink() and link.read_bytes() == b"audio"
        assert (corpus / r["file"]).is_file() and not (corpus / r["file"]).is_symlink()


def test_extra_copies_of_another_corpus_go_beside_it_and_are_rubberband_only(tmp_path):
    assert extra_dev_copies.extra_folder(extra_dev_copies.CORPUS) == extra_dev_copies.EXTRA
    assert extra_dev_copies.extra_folder(tmp_path) == tmp_path / "extra_copies"
    with pytest.raises(SystemExit, match="dev split only"):
        extra_dev_copies.main(["--corpus", str(tmp_path)])
    with pytest.raises(SystemExit, match=f"no corpus at {tmp_path}"):
        extra_dev_copies.main(["--corpus", str(tmp_path), "--tool", "rubberband"])
    assert not (tmp_path / "extra_copies").exists()


@pytest.mark.parametrize("tool", ["sox", "rubberband"])
def test_copy_tools_stretch_the_time_or_shift_the_pitch(tool, tmp_path):
    import shutil

    import build
    import soundfile as sf

    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (benchmarks/realmusic/setup.sh installs it)")
    sr = 22050
    t = np.arange(4 * sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t) * (1.0 + 0.5 * (np.sin(2 * np.pi * 2.0 * t) > 0))
    src = tmp_path / "tone.wav"
    sf.write(src, tone.astype(np.float32), sr)

    def pitch(path: Path) -> float:
        y, rate = sf.read(path, always_2d=True)
        spec = np.abs(np.fft.rfft(y[rate:-rate].mean(axis=1)))
        return float(np.fft.rfftfreq(len(y) - 2 * rate, 1.0 / rate)[np.argmax(spec)])

    build.COPY_TOOLS[tool](src, tmp_path / "fast.wav", "stretch", 1.12)
    build.COPY_TOOLS[tool](src, tmp_path / "up.wav", "shift", 2)
    assert sf.info(tmp_path / "fast.wav").duration == pytest.approx(4.0 / 1.12, rel=0.02)
    assert pitch(tmp_path / "fast.wav") == pytest.approx(440.0, rel=0.01)  # the pitch kept
    assert sf.info(tmp_path / "up.wav").duration == pytest.approx(4.0, rel=0.02)  # the tempo kept
    assert pitch(tmp_path / "up.wav") == pytest.approx(440.0 * 2 ** (2 / 12), rel=0.01)


@pytest.mark.parametrize(("est", "ref", "expected"), [
    ("C♯ minor", "Db minor", True),   # enharmonic spellings of one key
    ("E♭ major", "Eb major", True),
    ("A minor", "C major", False),    # relative: MIREX 0.3, not right
    ("A major", "A minor", False),
    ("G major", "C major", False),    # a fifth up: MIREX 0.5
    (None, "C major", False),
    ("H minor", "C major", False),    # unreadable
])
def test_same_key_is_mirex_full_credit(est, ref, expected):
    assert analysis_real.same_key(est, ref) is expected


def test_calibration_table_counts_right_and_wrong_answers_either_side_of_each_cut():
    rows = [{"file": f"f{i}.ogg", "variant": "clean", "bpm": "100", "key": "A minor"} for i in range(4)]
    rows.append({"file": "copy.ogg", "variant": "tempo0.9", "bpm": "", "key": ""})  # not labelled: left out
    res = {
        "f0.ogg": (100.0, "A minor", 0.01, 0.05),  # right, unsure
        "f1.ogg": (50.0, "C major", 0.02, 0.50),   # wrong tempo (half) and key (relative)
        "f2.ogg": (101.0, "E minor", 0.60, 0.10),  # right tempo, wrong key
        "f3.ogg": (140.0, "A minor", None, 0.90),  # wrong tempo, no confidence (counts as 0)
        "copy.ogg": (90.0, None, 0.0, 0.0),
    }
    tempo = {t["cut"]: t for t in analysis_real.calibration(rows, res, "tempo", (0.015, 0.05, 0.7))}
    assert tempo[0.015] == {"cut": 0.015, "share below": 0.5, "right below": 0.5, "right above": 0.5,
                            "errors below": 1, "errors": 2}
    assert tempo[0.05]["share below"] == 0.75 and tempo[0.05]["errors below"] == 2
    assert tempo[0.05]["right below"] == pytest.approx(1 / 3) and tempo[0.05]["right above"] == 1.0
    assert tempo[0.7]["right above"] is None and tempo[0.7]["errors below"] == 2
    key = analysis_real.calibration(rows, res, "key", (0.2,))[0]
    fields = ("share below", "right below", "right above", "errors below")
    assert [key[k] for k in fields] == [0.5, 0.5, 0.5, 1]
    with pytest.raises(ValueError, match="expected 'tempo' or 'key'"):
        analysis_real.calibration(rows, res, "loudness")


def test_extra_copies_tally_by_source_and_overall():
    originals = [{"file": "rec.ogg", "source": "recording"}, {"file": "bach.ogg", "source": "music21"}]
    jobs = [
        ("rec.ogg", "stretch", 0.85, "rec__t0.85.ogg"),
        ("rec.ogg", "shift", 4, "rec__x+4.ogg"),
        ("bach.ogg", "stretch", 1.2, "bach__t1.2.ogg"),
        ("bach.ogg", "shift", -2, "bach__x-2.ogg"),
    ]
    answers = {
        "rec.ogg": (100.0, "A minor"), "rec__t0.85.ogg": (85.0, "A minor"),  # tempo moved along, key did not
        "rec__x+4.ogg": (100.0, "C♯ minor"),
        "bach.ogg": (60.0, "G major"), "bach__t1.2.ogg": (144.0, "G major"),  # read at twice the stretched tempo
        "bach__x-2.ogg": (60.0, "F major"),
    }
    got = extra_dev_copies.tally(jobs, answers, extra_dev_copies.source_groups(originals))
    assert got == {
        ("stretch", "recording"): [True], ("stretch", "all"): [True, False],
        ("shift", "recording"): [True], ("shift", "all"): [True, True],
        ("stretch", "score or game MIDI"): [False], ("shift", "score or game MIDI"): [True],
    }


def test_dev_probe_caches_the_excerpt_once_and_reads_analyze_files_answers(tmp_path, monkeypatch):
    import numpy as np

    from lofi_pipeline.core import audio
    from lofi_pipeline.core.synth import synthesize_song, write_audio

    monkeypatch.setattr(dev_probe, "EXCERPTS", tmp_path / "excerpts")
    dev_probe.EXCERPTS.mkdir()
    song = write_audio(synthesize_song(bpm=96.0, key="F minor", seconds=20.0, sr=22050, seed=5),
                       22050, tmp_path / "piece__clean.ogg")
    assert dev_probe._cache_one(song) == "piece__clean.ogg"
    cached = dev_probe.excerpt_path("piece__clean.ogg")
    first = cached.stat().st_mtime_ns
    dev_probe._cache_one(song)  # already there: not decoded again
    assert cached.stat().st_mtime_ns == first
    assert [p.name for p in dev_probe.EXCERPTS.iterdir()] == ["piece__clean.ogg.npy"]  # no partial file left
    np.testing.assert_array_equal(np.load(cached), audio.analysis_excerpt(song))
    elsewhere = tmp_path / "test_excerpts"  # tempocnn_probe.py excerpts: another split, its own folder
    elsewhere.mkdir()
    dev_probe._cache_one(song, elsewhere)
    np.testing.assert_array_equal(np.load(elsewhere / "piece__clean.ogg.npy"), np.load(cached))
    assert [p.name for p in dev_probe.EXCERPTS.iterdir()] == ["piece__clean.ogg.npy"]
    name, (bpm, key, bpm_conf, key_conf) = dev_probe._read("piece__clean.ogg")
    f = audio.analyze_file(song)
    assert (name, bpm, key, bpm_conf, key_conf) == ("piece__clean.ogg", f.bpm, f.key, f.bpm_confidence,
                                                    f.key_confidence)


def _stretch_rows(groups: int) -> list[dict]:
    rows = []
    for g in range(groups):
        rows.append({"group": f"g{g}", "file": f"g{g}__orig.ogg", "variant": "orig", "stretch": "1.0",
                     "shift": "0", "bpm": "", "key": ""})
        for factor in ("0.9", "1.12"):
            rows.append({"group": f"g{g}", "file": f"g{g}__tempo{factor}.ogg", "variant": f"tempo{factor}",
                         "stretch": factor, "shift": "0", "bpm": "", "key": ""})
    return rows


def _answers(rows: list[dict], wrong_groups: set[str]) -> dict[str, tuple]:
    """Each copy read at its original's 100 BPM times the factor, except in ``wrong_groups`` (half that)."""
    res = {}
    for r in rows:
        bpm = 100.0 * float(r["stretch"])
        if r["variant"] != "orig" and r["group"] in wrong_groups:
            bpm /= 2
        res[r["file"]] = (bpm, None, 0.5, 0.0)
    return res


def test_bootstrap_draws_whole_pieces_so_copies_of_one_piece_move_together():
    rows = _stretch_rows(4)
    reps = analysis_real._replicates(rows, {"ours": _answers(rows, {"g0"})}, 500, seed=1)
    values = reps["ours"]["stretch consistency"]
    # 4 pieces of 2 copies each: a draw of pieces gives a multiple of 1/4; a draw of single copies would
    # also give 1/8, 3/8, ...
    assert np.allclose(values * 4, np.rint(values * 4))
    assert set(np.rint(values * 4).astype(int)) >= {2, 3, 4}
    assert np.isnan(reps["ours"]["Acc1"]).all()  # nothing labelled with a tempo: no figure, not 0


def test_bootstrap_intervals_and_paired_differences():
    rows = _stretch_rows(12)
    results = {"ours": _answers(rows, set()), "other": _answers(rows, {"g0", "g1", "g2"})}
    boot = analysis_real.bootstrap(rows, results, resamples=800, seed=0)
    assert boot["pieces"] == 12
    assert boot["intervals"]["ours"]["stretch consistency"] == [1.0, 1.0]
    low, high = boot["intervals"]["other"]["stretch consistency"]
    assert low < 0.75 < high <= 1.0
    vs = boot["ours against"]["other"]["stretch consistency"]
    # Paired draws: ours is never behind; it is level only when a draw misses all three wrong pieces.
    assert vs["behind"] == 0.0
    assert 0.85 < vs["ahead"] < 1.0
    assert vs["difference"][0] >= 0.0
    assert set(boot["ours against"]) == {"other"}  # ours is not set against itself


@pytest.mark.parametrize(("results", "labels"), [
    ("analysis_real_test.json", "labels.csv"),
    ("analysis_real_dev.json", "labels.csv"),
    ("analysis_real_holdout.json", "holdout_labels.csv"),
    ("analysis_real_holdout_rubberband.json", "holdout_rubberband_labels.csv"),
])
def test_rescore_reproduces_the_stored_figures_from_the_stored_answers(results, labels, tmp_path, capsys):
    stored_path = BENCH / "results" / results
    stored = json.loads(stored_path.read_text())
    out = tmp_path / "again.json"
    assert analysis_real.main(["--rescore", str(stored_path), "--labels", str(BENCH / "realmusic" / labels),
                               "--json", str(out), "--resamples", "300"]) == 0
    again = json.loads(out.read_text())
    assert again["answers"] == stored["answers"]
    assert again["figures"] == stored["figures"]  # the same rules on the same answers, to the last digit
    for method, figures in stored["figures"].items():
        intervals = again["bootstrap"]["intervals"][method]
        assert intervals["stretch consistency"] and intervals["shift consistency"]
        for metric, interval in intervals.items():
            if figures[metric] is None:
                assert interval is None, (method, metric)  # nothing labelled: no figure and no interval
            else:
                assert interval[0] <= figures[metric] <= interval[1], (method, metric)
    assert "95 % intervals" in capsys.readouterr().out


def test_rescore_against_labels_without_those_files_says_so(tmp_path):
    stored_path = BENCH / "results" / "analysis_real_holdout.json"
    with pytest.raises(SystemExit, match=r"labels\.csv: none of the files answered"):
        analysis_real.main(["--rescore", str(stored_path),
                            "--labels", str(BENCH / "realmusic" / "labels.csv")])


def test_holdout_takes_turns_between_packages_in_hash_order(tmp_path, monkeypatch):
    import zipfile

    import build
    import holdout

    pk3 = tmp_path / "0music.pk3"
    with zipfile.ZipFile(pk3, "w") as z:
        for name in ("a.ogg", "b.ogg", "c.ogg"):
            z.writestr(f"music/{name}", b"not audio: the builder only unpacks here")
        z.writestr("music/readme.txt", b"x")
    wesnoth = tmp_path / "wesnoth"
    wesnoth.mkdir()
    (wesnoth / "w1.ogg").write_bytes(b"x")
    monkeypatch.setattr(holdout, "UFOAI_PK3", pk3)
    monkeypatch.setattr(holdout, "WESNOTH_MUSIC", wesnoth)
    src = tmp_path / "src"
    ufoai, wes = holdout.sources(src)
    assert sorted(p.name for p in ufoai) == ["a.ogg", "b.ogg", "c.ogg"]
    assert [p.name for p in ufoai] == [p.name for p in holdout._hashed(ufoai)]
    assert (src / "ufoai" / "a.ogg").read_bytes() == b"not audio: the builder only unpacks here"
    # The packaged file is linked, never copied or moved: the group names the package.
    assert wes == [src / "wesnoth" / "w1.ogg"] and wes[0].resolve() == (wesnoth / "w1.ogg").resolve()
    assert build._recording_group(wes[0]) == "rec:wesnoth/w1.ogg"
    chosen = holdout.pick([ufoai, wes], 3)
    assert [p.name for p in chosen] == [ufoai[0].name, "w1.ogg", ufoai[1].name]
    assert len(holdout.pick([ufoai, wes], 10)) == 4  # everything, once
    # Unpacking and linking again leaves the files as they are and finds the same ones.
    assert holdout.sources(src) == [ufoai, wes]
    assert (wesnoth / "w1.ogg").read_bytes() == b"x"


def test_holdout_labels_are_consistency_pairs_only():
    rows = list(csv.DictReader((BENCH / "realmusic" / "holdout_labels.csv").read_text().splitlines()))
    assert rows and {r["split"] for r in rows} == {"holdout"}
    assert not any(r["bpm"] or r["key"] for r in rows)
    originals = {r["group"] for r in rows if r["variant"] == "orig"}
    for g in originals:
        assert sorted(r["variant"] for r in rows if r["group"] == g) == [
            "orig", "pitch+2", "pitch-3", "tempo0.9", "tempo1.12"]
    main = {r["group"] for r in csv.DictReader((BENCH / "realmusic" / "labels.csv").read_text().splitlines())}
    assert not originals & main  # no piece of the corpus the analyzer was tuned on


def test_rescore_names_the_file_it_cannot_read(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"figures": {}}')
    with pytest.raises(SystemExit, match=r"notes\.json: expected a results file"):
        analysis_real.main(["--rescore", str(bad)])


def test_pair_auroc_ranks_consistent_pairs_by_their_lower_confidence():
    rows = _stretch_rows(3)
    res = _answers(rows, {"g0"})  # g0's copies read half the expected tempo
    for r in rows:
        bpm, key, _, _ = res[r["file"]]
        # The wrong pairs' copies are unsure; the originals (0.9 everywhere) never decide the minimum.
        res[r["file"]] = (bpm, key, 0.9 if r["variant"] == "orig" else (0.01 if r["group"] == "g0" else 0.5), None)
    pairs = list(analysis_real._pairs(rows, res))
    assert analysis_real.pair_auroc(pairs, "stretch") == 1.0
    # An original unsure where its copies are sure: its two pairs take the original's 0.001 and now rank
    # below the two wrong pairs (0.01); the other two right pairs still rank above: 4 of 8 comparisons.
    res["g1__orig.ogg"] = (100.0, None, 0.001, None)
    assert analysis_real.pair_auroc(list(analysis_real._pairs(rows, res)), "stretch") == 0.5
    # No confidence at all (the seed method): no figure.
    seed = {f: (a[0], a[1], None, None) for f, a in res.items()}
    assert analysis_real.pair_auroc(list(analysis_real._pairs(rows, seed)), "stretch") is None
    assert analysis_real.pair_auroc(pairs, "shift") is None  # no shifted copies here


def test_tempocnn_windows_are_the_models_256_frame_inputs_every_128_frames():
    mel = np.arange(40 * 600, dtype=np.float32).reshape(40, 600)
    windows = tempocnn_probe._windows(mel)
    assert windows.shape == (3, 40, 256, 1)  # starts 0, 128, 256; a fourth (384) would run past 600
    for i, start in enumerate((0, 128, 256)):
        assert np.array_equal(windows[i, :, :, 0], mel[:, start:start + 256])
    short = tempocnn_probe._windows(mel[:, :100])  # under one window: zero-padded, not dropped
    assert short.shape == (1, 40, 256, 1)
    assert np.array_equal(short[0, :, :100, 0], mel[:, :100]) and not short[0, :, 100:].any()


@pytest.mark.parametrize(("results", "labels"), [
    ("tempocnn_test.json", "labels.csv"),
    ("tempocnn_dev.json", "labels.csv"),
    ("tempocnn_holdout.json", "holdout_labels.csv"),  # recordings only: stretch pairs, no tempo labels
])
def test_tempocnn_stored_figures_come_again_from_the_stored_answers(results, labels):
    stored = json.loads((BENCH / "results" / results).read_text())
    assert stored["labels"] == labels
    runs = [{"model": m, "answers": a, "seconds_per_file": stored["seconds_per_excerpt"][m]}
            for m, a in stored["answers"].items()]
    again = tempocnn_probe.score_runs(stored["split"], runs, BENCH / "realmusic" / labels)
    assert again["figures"] == stored["figures"]  # the same rules on the same answers, to the last digit
    assert again == {k: v for k, v in stored.items() if k != "extra dev copies, stretch consistency"}
    assert {"fcn", "cnn"} <= set(stored["figures"])  # dev also has the package's other tempo models
    for figures in stored["figures"].values():  # every copy pair of the split was read
        assert figures["n_stretch"] >= 96 and figures["stretch consistency"] is not None


def test_tempocnn_scoring_names_the_model_missing_a_file():
    stored = json.loads((BENCH / "results" / "tempocnn_test.json").read_text())
    answers = dict(stored["answers"]["fcn"])
    dropped = sorted(answers)[0]
    del answers[dropped]
    with pytest.raises(SystemExit, match=rf"fcn: no answer for 1 test files \(first: {re.escape(dropped)}\)"):
        tempocnn_probe.score_runs("test", [{"model": "fcn", "answers": answers, "seconds_per_file": 0.3}])
