"""7. A lifecycle policy over a repository of 20,000 images, and of 2,000: the cost is linear.

In a child process with the sweep's own store (bench.child lifecycle): each repository is filled
directly in DynamoDB Local (as in section 2), then a preview of "keep the newest half" is computed
as StartLifecyclePolicyPreview and the sweep compute it (read every image, evaluate, store the
results in parts), a policy that expires nothing is applied as the sweep applies it (read every
image, evaluate), and runs that each expire the 100 oldest images left (the same, and 100
conditional expiries). Each is measured three times and the best kept (the machine is shared); a
first small repository warms the process up and is not reported. DynamoDB calls and request units
are counted by the same botocore hooks as section 1."""

from __future__ import annotations

from bench.runner import run_child


def run(ctx) -> dict:
    sizes = [100, 200, 2_000] if ctx.quick else [100, 2_000, 20_000]
    arguments = {"sizes": sizes, "expiries": 100, "warm_up": True}
    output = run_child("lifecycle", arguments, ctx.environment, timeout=1800)
    small, big = output["cases"]
    for case in output["cases"]:
        images = case["images"]
        for part in ("preview", "idle_run"):
            case[part]["ms_per_1000_images"] = round(case[part]["seconds"] / images * 1_000_000, 1)
        case["preview"]["images_in_20_s"] = int(images / case["preview"]["seconds"] * 20)
        extra = case["run"]["seconds"] - case["idle_run"]["seconds"]  # the expiries, beyond reading and judging
        case["run"]["ms_per_expiry"] = round(extra * 1000 / case["run"]["expired"], 1)
    return {
        "cases": output["cases"],
        "preview_ratio": _per_image_ratio(small, big, "preview"),
        "run_ratio": _per_image_ratio(small, big, "idle_run"),
        "target": "linear: time per image at the largest size <= 1.5x of at the smaller",
    }


def _per_image_ratio(small: dict, big: dict, part: str) -> float:
    return round((big[part]["seconds"] / big["images"]) / (small[part]["seconds"] / small["images"]), 2)
