"""The parameter-form model built from the welcome's method schemas, and its persistence."""
import pytest

from dragedit_protocol.editor.errors import UserError
from dragedit_protocol.editor.params import ParamStore, methods_from_welcome

from fake_client import WELCOME


@pytest.fixture
def dd():
    return methods_from_welcome(WELCOME)[0]


def test_methods_come_from_the_welcome_with_their_defaults():
    methods = methods_from_welcome(WELCOME)
    assert [m.title for m in methods] == ["DragDiffusion", "GoodDrag"]
    steps = methods[0].param("drag_steps")
    assert (steps.type, steps.default, steps.min, steps.max, steps.advanced) == ("int", 80, 1, 500, False)
    assert steps.label == "Drag steps"
    assert methods[1].param("tracker").choices == ("l1", "l2")
    # the schema may also sit under "engine" (engine.describe() forwarded as is)
    nested = {"type": "welcome", "engine": {"methods": WELCOME["methods"]}}
    assert [m.name for m in methods_from_welcome(nested)] == ["dragdiffusion", "goodrag"]
    assert methods_from_welcome(None) == []


def test_values_are_converted_to_the_parameter_type(dd):
    store = ParamStore()
    assert store.set(dd, "drag_steps", "120") == 120
    assert store.set(dd, "drag_steps", 40.0) == 40
    assert store.set(dd, "lr", "0.05") == 0.05
    assert store.set(dd, "use_lora", "false") is False
    assert store.value(dd, "drag_steps") == 40


@pytest.mark.parametrize("name,value,text", [
    ("drag_steps", 0, "Drag steps must be between 1 and 500, not 0. The default is 80."),
    ("drag_steps", 2.5, "Drag steps must be a whole number, not 2.5"),
    ("drag_steps", True, "Drag steps must be a whole number"),
    ("lr", "fast", "Lr must be a number, not 'fast'"),
    ("lr", float("nan"), "Lr must be a number"),
    ("use_lora", 1, "Use lora must be true or false"),
])
def test_bad_values_give_a_sentence_with_the_default(dd, name, value, text):
    with pytest.raises(UserError) as err:
        ParamStore().set(dd, name, value)
    assert text in str(err.value)


def test_choices_are_enforced():
    gd = methods_from_welcome(WELCOME)[1]
    store = ParamStore()
    assert store.set(gd, "tracker", "l2") == "l2"
    with pytest.raises(UserError, match="one of l1, l2"):
        store.set(gd, "tracker", "l3")


def test_only_changed_values_are_sent(dd):
    store = ParamStore()
    assert store.overrides(dd) == {}
    store.set(dd, "drag_steps", 80)   # same as the default
    store.set(dd, "lr", 0.02)
    assert store.overrides(dd) == {"lr": 0.02}
    store.reset(dd)
    assert store.overrides(dd) == {}


def test_json_round_trip_and_stale_values(dd):
    store = ParamStore(method="dragdiffusion", prompt="a cat")
    store.set(dd, "drag_steps", 30)
    store.set_seed("42")
    again = ParamStore.from_json(store.to_json())
    assert again == store
    # a value the schema no longer allows falls back to the published default
    again.values["dragdiffusion"]["drag_steps"] = 9999
    assert again.value(dd, "drag_steps") == 80
    assert again.overrides(dd) == {}


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '{"method": 3, "values": [], "seed": "x"}'])
def test_unreadable_saved_settings_give_defaults(text):
    assert ParamStore.from_json(text) == ParamStore()


def test_seed_blank_is_random_and_bad_seed_is_an_error():
    store = ParamStore()
    assert store.set_seed(" ") is None and store.seed is None
    assert store.set_seed(7) == 7
    for bad in ("-1", "1.5", "abc", 2**63):
        with pytest.raises(UserError, match="whole number from 0"):
            store.set_seed(bad)
    assert store.seed == 7
