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
    ("lr", "fast", "Drag rate must be a number, not 'fast'"),
    ("lr", float("nan"), "Drag rate must be a number"),
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


@pytest.mark.parametrize("name,words", [("inversion_strength", "Strength"), ("r2", "Search radius"),
                                        ("lora_steps", "Fine-tuning steps"), ("some_new_knob", "Some new knob")])
def test_labels_are_words_an_artist_reads(name, words):
    from dragedit_protocol.editor.params import ParamSpec

    assert ParamSpec(name, "int", 1).label == words


@pytest.mark.parametrize("default,minimum,decimals", [(0.7, 0.0, 2), (0.01, 1e-5, 3), (0.02, None, 3),
                                                      (5e-4, 1e-6, 5), (4.0, 0.5, 2), (0.0, 0.001, 4)])
def test_float_fields_show_sensible_decimals(default, minimum, decimals):
    from dragedit_protocol.editor.params import ParamSpec

    assert ParamSpec("x", "float", default, min=minimum).decimals == decimals


def test_the_soft_edge_is_the_editors_own_control_not_a_second_form_field():
    from dragedit_protocol.editor.params import MethodSpec, ParamSpec

    method = MethodSpec("m", "M", params=(ParamSpec("drag_steps", "int", 80), ParamSpec("feather", "int", 4)))
    assert [p.name for p in method.form_params] == ["drag_steps"]


def test_result_layers_are_named_in_words():
    from dragedit_protocol.editor.params import result_layer_name

    method = methods_from_welcome(WELCOME)[0]
    assert result_layer_name(method, 42, {"lr": 0.02, "drag_steps": 20}) == "DragDiffusion drag (seed 42; Drag steps 20, Drag rate 0.02)"
    assert result_layer_name(method, None, {}) == "DragDiffusion drag"
    assert result_layer_name(None, 3) == "DragEdit drag (seed 3)"
