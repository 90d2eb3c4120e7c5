"""Fixtures the unit tests of the provisioning and container paths share: a fresh in-memory store
and fresh fakes of the adapters, one of each per test."""

from __future__ import annotations

from dcvfleet.store import InMemorySessionStore
from tests.support.batch import FakeJobs
from tests.support.fixtures import fresh
from tests.support.service import FakeHosts, FakeWorkflows

store = fresh("store", InMemorySessionStore)
hosts = fresh("hosts", FakeHosts)
workflows = fresh("workflows", FakeWorkflows)
jobs = fresh("jobs", FakeJobs)
