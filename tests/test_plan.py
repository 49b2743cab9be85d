"""A run is planned once: every automatic setting resolved from what was asked, and a refit re-derives only
what follows the steps, from what was asked, without reading the data again."""

from meanteacher.config.auto import RAMPUP_SHARE, has_auto
from meanteacher.run.plan import plan_run, replan
from tests.helpers import tiny_config


def test_a_plan_resolves_every_automatic_setting_and_keeps_what_was_asked():
    plan = plan_run(tiny_config(steps=100, rampup_steps=None, eval_every=None), "cpu")
    assert not has_auto(plan.config) and plan.config.rampup_steps == round(100 * RAMPUP_SHARE)
    assert plan.requested.rampup_steps is None and plan.requested.eval_every is None
    assert len(plan.split.labeled) == 50 and plan.auto_inputs == (10, False, 50, "cpu")


def test_a_replan_derives_again_only_what_the_run_left_automatic():
    plan = plan_run(tiny_config(steps=100, rampup_steps=None, eval_every=None), "cpu")
    longer = replan(plan, 1000, evaluations=10)
    assert longer.config.steps == 1000 and longer.config.rampup_steps == round(1000 * RAMPUP_SHARE)
    assert longer.config.eval_every == 100
    assert longer.dataset is plan.dataset and longer.split is plan.split  # the data is not read again
    assert plan.config.steps == 100  # a plan is frozen: a replan is a new one
    fixed = plan_run(tiny_config(steps=100, rampup_steps=10, eval_every=10), "cpu")
    assert (replan(fixed, 1000, evaluations=10).config.rampup_steps, replan(fixed, 1000, 10).config.eval_every) == (
        10,
        10,
    )
