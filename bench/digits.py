"""Digits (one-to-one) benchmark: test accuracy over 5 seeded stratified 80/20 splits of
scikit-learn's digits, and CPU training time per split. Target: mean >= 98%, each < 2 minutes.

    python bench/digits.py [--seeds 0 1 2 3 4] [--set key=value ...]

Writes bench/results/digits.json. Reference on the same splits (measured for issue 2):
logistic regression 96.8%, MLP(128) 98.1%, RBF SVM 99.1%.
"""

import argparse

import common


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    from rnn_apps.config import parse_assignments

    overrides = parse_assignments(args.assignments)
    runs = []
    for seed in args.seeds:
        runs.append(common.train_and_evaluate("digits", "digits", overrides, seed))
        print(runs[-1], flush=True)
    accuracies = [r["test_accuracy"] for r in runs]
    common.write("digits", {
        "overrides": overrides, "runs": runs,
        "mean_test_accuracy": sum(accuracies) / len(accuracies), "min_test_accuracy": min(accuracies),
        "max_train_seconds": max(r["train_seconds"] for r in runs),
    })


if __name__ == "__main__":
    main()
