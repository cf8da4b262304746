"""Registration by setting and by track(); manage.py check names every unknown model or field with an id."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from rail_django.tracking import track, untrack
from rail_django.tracking.checks import check_tracked_models
from tests.testapp.models import Customer, Memo
from tests.tracking.conftest import context


@pytest.fixture
def memo_tracked_in_code():
    yield
    untrack(Memo)
    untrack("testapp.Memo")


def test_track_function_registers_a_model(trail, memo_tracked_in_code):
    track(Memo, mask=["text"])
    memo = Memo.objects.create(text="hello")
    row = trail.one("data.create")
    assert context(row)["changes"]["text"] == [None, "***REDACTED***"]
    untrack(Memo)
    memo.text = "not recorded"
    memo.save()
    assert len(trail.events()) == 1


def test_track_as_a_class_decorator(trail, memo_tracked_in_code):
    decorated = track(fields=["text"])(Memo)
    assert decorated is Memo
    Memo.objects.create(text="x")
    assert set(context(trail.one("data.create"))["changes"]) == {"text"}


def test_setting_wins_over_track_for_the_same_model(trail, settings, memo_tracked_in_code):
    track("testapp.Memo", mask=["text"])
    settings.AUDIT_TRACKED_MODELS = {**settings.AUDIT_TRACKED_MODELS, "testapp.Memo": {"exclude": ["id"]}}
    Memo.objects.create(text="visible")
    assert context(trail.one("data.create"))["changes"] == {"text": [None, "visible"]}


def test_fields_option_tracks_only_those_fields(trail, settings):
    settings.AUDIT_TRACKED_MODELS = {"testapp.Customer": {"fields": ["name"]}}
    customer = Customer.objects.create(name="A", email="a@example.com")
    customer.email = "b@example.com"
    customer.save()
    customer.name = "B"
    customer.save()
    assert [context(e)["changes"] for e in trail.events()] == [{"name": [None, "A"]}, {"name": ["A", "B"]}]


def test_removing_a_model_from_the_setting_stops_tracking(trail, settings):
    settings.AUDIT_TRACKED_MODELS = {}
    Customer.objects.create(name="untracked now")
    assert trail.events() == []


def ids_of(errors):
    return sorted({e.id for e in errors})


@pytest.mark.parametrize(
    ("setting", "expected_id", "fragment"),
    [
        ("not a dict", "rail_django.E070", "it must be a dict"),
        ({"testapp.Invoice": ["amount"]}, "rail_django.E070", "it must be a dict of options"),
        ({"testapp.Invoice": {"exlude": ["notes"]}}, "rail_django.E070", "unknown option 'exlude'"),
        ({"testapp.Invoice": {"mask": "iban"}}, "rail_django.E070", "it must be a list of names"),
        ({"testapp.Nope": {}}, "rail_django.E071", "no installed model is called 'testapp.Nope'"),
        ({"testapp.Invoice": {"exclude": ["amout"]}}, "rail_django.E072", "exclude names 'amout'"),
        ({"testapp.Invoice": {"m2m": ["labels"]}}, "rail_django.E073", "m2m names 'labels'"),
        ({"rail_django.AuditEventModel": {}}, "rail_django.E074", "cannot be tracked"),
    ],
)
def test_bad_configuration_fails_check_with_an_id(settings, setting, expected_id, fragment):
    settings.AUDIT_TRACKED_MODELS = setting
    errors = check_tracked_models()
    assert expected_id in ids_of(errors)
    assert any(fragment in e.msg for e in errors), [e.msg for e in errors]


def test_unknown_field_in_track_fails_check(memo_tracked_in_code):
    track(Memo, fields=["txt"])
    errors = check_tracked_models()
    assert ids_of(errors) == ["rail_django.E072"]
    assert "track(testapp.Memo): fields names 'txt'" in errors[0].msg


def test_manage_py_check_reports_the_error(settings):
    settings.AUDIT_TRACKED_MODELS = {"testapp.Invoice": {"mask": ["card"]}}
    with pytest.raises(SystemCheckError, match=r"rail_django\.E072"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def test_valid_configuration_passes_check():
    assert check_tracked_models() == []


def test_a_bad_setting_never_breaks_a_write(trail, settings):
    settings.AUDIT_TRACKED_MODELS = {"testapp.Customer": {"fields": ["nmae"]}, "testapp.Nope": {}}
    Customer.objects.create(name="still saved")
    assert Customer.objects.filter(name="still saved").exists()
