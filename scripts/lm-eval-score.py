#!/usr/bin/env python3
"""Scores meekbench outputs with lm-evaluation-harness's own GSM8K filters and metric, to check that meekbench's
verdicts are lm-eval's, item for item.

  lm-eval-score.py fixture CASES OUT   each case {task, response, answer} gets lm-eval's strict and flexible
                                       {extracted, correct}; OUT is the fixture the Rust tests compare with
  lm-eval-score.py rescore RESULT.json re-scores every kept output of every suite that followed an lm-eval task
                                       and exits 1 when any verdict differs from the file's

Needs lm-eval importable (its filters and metric only, no model code):
  python3 -m venv v && v/bin/pip install --no-deps lm_eval==0.4.13 && v/bin/pip install evaluate datasets \
      sacrebleu jinja2 pyyaml
The filter patterns and metric settings are read from lm-eval's installed task files, never restated here.
"""
import json
import pathlib
import sys

import yaml
import lm_eval
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.filters.extraction import RegexFilter
from lm_eval.utils import apply_template

TASKS = {"gsm8k": "gsm8k.yaml", "gsm8k_cot_llama": "gsm8k-cot-llama.yaml"}


def task_config(name):
    path = pathlib.Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / TASKS[name]
    return yaml.safe_load(path.read_text())


def scorer(name):
    cfg = task_config(name)
    filters = {}
    for f in cfg["filter_list"]:
        steps = f["filter"]
        assert [s["function"] for s in steps] == ["regex", "take_first"], steps
        args = {k: v for k, v in steps[0].items() if k != "function"}
        filters[f["name"]] = RegexFilter(**args)
    (metric,) = cfg["metric_list"]
    kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}

    def score(response, answer):
        reference = apply_template(cfg["doc_to_target"], {"question": "", "answer": answer})
        out = {}
        for key, name_ in (("strict", "strict-match"), ("flexible", "flexible-extract")):
            (filtered,) = list(filters[name_].apply([[response]], [{}]))[0]
            correct = exact_match_hf_evaluate([filtered], [reference], **kwargs)["exact_match"] == 1.0
            out[key] = {"extracted": None if filtered == "[invalid]" else filtered, "correct": bool(correct)}
        return out

    return score


def fixture(cases_path, out_path):
    cases = json.loads(pathlib.Path(cases_path).read_text())
    scorers = {name: scorer(name) for name in TASKS}
    for c in cases:
        c.update(scorers[c["task"]](c["response"], c["answer"]))
    pathlib.Path(out_path).write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases scored by lm-eval {lm_eval.__version__} -> {out_path}")


def rescore(result_path):
    result = json.loads(pathlib.Path(result_path).read_text())
    scorers = {name: scorer(name) for name in TASKS}
    checked = differ = 0
    for run in result.get("runs", []):
        for suite in run.get("accuracy", []):
            task = suite.get("task")
            if task not in scorers:
                continue
            for item in suite["items"]:
                if item.get("output") is None:
                    continue
                # The item's expected answer is the text after the dataset answer's `####`: the reference both
                # tasks compare with once their ignore list has run.
                got = scorers[task](item["output"], "#### " + item["expected"])
                checked += 1
                for key in ("strict", "flexible"):
                    if got[key]["correct"] != item[f"correct_{key}"]:
                        differ += 1
                        print(f"{run['model']['id']} {suite['suite']} {item['id']} {key}: lm-eval says "
                              f"{got[key]}, meekbench {item[f'correct_{key}']}")
    print(f"{checked} outputs re-scored with lm-eval {lm_eval.__version__}: {differ} verdicts differ")
    return 1 if differ or not checked else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["fixture"] and len(sys.argv) == 4:
        fixture(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["rescore"] and len(sys.argv) == 3:
        sys.exit(rescore(sys.argv[2]))
    else:
        sys.exit(__doc__)
