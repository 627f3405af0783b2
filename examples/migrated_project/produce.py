"""Send a few tasks to running workers and print their results."""

from proj.tasks import add, fetch_report, sync_account


def main() -> None:
    results = {
        "add(2, 3)": add.delay(2, 3),
        "fetch_report('r1', fail_times=2)": fetch_report.apply_async(
            ("r1",), {"fail_times": 2}, countdown=0.1
        ),
        "sync_account('acme', fail_times=1)": sync_account.delay("acme", fail_times=1),
    }
    for label, result in results.items():
        print(f"{label} -> {result.get(timeout=30)!r}")


if __name__ == "__main__":
    main()
