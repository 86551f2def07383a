"""Command-line tasks: ``flask --app portal <command>``.

``flask --app portal db upgrade`` (Flask-Migrate) applies migrations; the portal never migrates at start-up.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from portal import services
from portal.admin import accounts
from portal.audit.chain import verify_chain
from portal.demo import create_demo_transfers
from portal.directory.cli import orgs_cli
from portal.extensions import db
from portal.invitation_mail import invitation_link
from portal.models import Organisation, OrganisationKind, Role, User
from portal.models.base import today_in_england
from portal.tracking import cli as tracking_cli
from portal.transfers import cli as transfers_cli

audit_cli = AppGroup("audit", help="The audit trail.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(create_org)
    app.cli.add_command(create_user)
    app.cli.add_command(seed_demo)
    app.cli.add_command(audit_cli)
    transfers_cli.init_app(app)
    app.cli.add_command(orgs_cli)
    tracking_cli.init_app(app)


@click.command("create-org")
@with_appcontext
@click.option("--kind", type=click.Choice([k.value for k in OrganisationKind]), required=True)
@click.option("--name", required=True)
@click.option("--urn", help="School URN (schools)")
@click.option("--la-code", help="DfE local-authority code, 3 digits")
@click.option("--establishment-number", help="DfE establishment number, 4 digits (schools)")
@click.option("--local-authority-id", type=int, help="Id of the school's local authority")
def create_org(
    kind: str,
    name: str,
    urn: str | None,
    la_code: str | None,
    establishment_number: str | None,
    local_authority_id: int | None,
) -> None:
    """Create a school or a local authority."""
    organisation = Organisation(
        kind=OrganisationKind(kind),
        name=name,
        urn=urn,
        la_code=la_code,
        establishment_number=establishment_number,
        local_authority_id=local_authority_id,
    )
    _check_org_numbers(organisation)
    db.session.add(organisation)
    db.session.commit()
    click.echo(f"Created organisation {organisation.id}: {organisation.name}")


@click.command("create-user")
@with_appcontext
@click.option("--org-id", type=int, required=True)
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
def create_user(org_id: int, email: str, display_name: str, role: str) -> None:
    """Create a user and print their one-time invitation link (e.g. the first admin)."""
    organisation = db.session.get(Organisation, org_id)
    if organisation is None:
        raise click.ClickException(f"No organisation with id {org_id}")
    try:
        user, token = accounts.invite_user(
            db.session,
            organisation=organisation,
            email=email,
            display_name=display_name,
            role=Role(role),
            invited_by=None,
            valid_hours=services.settings().invitation_valid_hours,
        )
    except accounts.AccountError as problem:
        raise click.ClickException(str(problem)) from None
    db.session.commit()
    click.echo(f"Created user {user.id} ({user.role.label}). Invitation link (use once):")
    click.echo(invitation_link(token))


DEMO_LA = {"name": "Northshire County Council (demo)", "la_code": "999"}
DEMO_SCHOOLS = (
    {
        "name": "Oakfield Primary School (demo)",
        "urn": "999001",
        "establishment_number": "2001",
        "phase": "Primary",
    },
    {
        "name": "Riverside Academy (demo)",
        "urn": "999002",
        "establishment_number": "4001",
        "phase": "Secondary",
    },
)
DEMO_USERS = (
    ("admin@oakfield.demo", "Alex Admin", Role.ORG_ADMIN, 0),
    ("sender@oakfield.demo", "Sam Sender", Role.SCHOOL_STAFF, 0),
    ("dt@riverside.demo", "Dana Teacher", Role.DESIGNATED_TEACHER, 1),
    ("caseworker@northshire.demo", "Casey Worker", Role.CASEWORKER, None),
)


@click.command("seed-demo")
@with_appcontext
def seed_demo() -> None:
    """Demo data: an authority, two schools, a sender, a designated teacher, a caseworker, an admin."""
    if db.session.scalar(select(Organisation).where(Organisation.la_code == DEMO_LA["la_code"])):
        click.echo("Demo data is already present. Users still to enrol get fresh links:")
        for user in db.session.scalars(select(User).where(User.email.like("%.demo"))):
            if not user.is_enrolled:
                token = accounts.reinvite(
                    db.session, user, invited_by=None, valid_hours=services.settings().invitation_valid_hours
                )
                click.echo(f"  {user.role.label:38} {user.email:28} {invitation_link(token)}")
            else:
                click.echo(f"  {user.role.label:38} {user.email:28} (already set up: sign in)")
        db.session.commit()
        return
    authority = Organisation(
        kind=OrganisationKind.LOCAL_AUTHORITY, name=DEMO_LA["name"], la_code=DEMO_LA["la_code"]
    )
    schools = [
        Organisation(
            kind=OrganisationKind.SCHOOL, la_code=DEMO_LA["la_code"], local_authority=authority, **school
        )
        for school in DEMO_SCHOOLS
    ]
    db.session.add_all([authority, *schools])
    db.session.flush()
    click.echo("Demo data created. Open each link once, in a private window, to set up that user:")
    for email, name, role, school_index in DEMO_USERS:
        organisation = authority if school_index is None else schools[school_index]
        user, token = accounts.invite_user(
            db.session,
            organisation=organisation,
            email=email,
            display_name=name,
            role=role,
            invited_by=None,
            valid_hours=services.settings().invitation_valid_hours,
        )
        # Demo people have done their IG training, so a newcomer can send and download at once.
        user.ig_training_completed_on = today_in_england()
        click.echo(f"  {role.label:38} {email:28} {invitation_link(token)}")
        if role is Role.SCHOOL_STAFF:
            demo_sender = user
    db.session.commit()
    settings = services.settings()
    made = create_demo_transfers(
        db.session,
        sender=demo_sender,
        receiving_school=schools[1],
        authority=authority,
        store=services.object_store(),
        wrapper=services.key_wrapper(),
        public_base_url=settings.public_base_url,
    )
    click.echo(
        f"{made} demo transfers from {schools[0].name} to {schools[1].name} are waiting for its designated "
        "teacher to set up their account (the caseworker's dashboard shows them now)."
    )


@audit_cli.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain; name the first bad event. Exit status 1 if broken."""
    report = verify_chain(db.session)
    if report.intact:
        click.echo(f"Audit chain intact: {report.events_checked} events verified.")
        return
    click.echo(f"Audit chain BROKEN at event {report.first_bad_sequence}: {report.problem}", err=True)
    click.echo(f"{report.events_checked} events before it verified.", err=True)
    sys.exit(1)


def _check_org_numbers(organisation: Organisation) -> None:
    if organisation.la_code and not (len(organisation.la_code) == 3 and organisation.la_code.isdigit()):
        raise click.ClickException("--la-code must be 3 digits")
    number = organisation.establishment_number
    if number and not (len(number) == 4 and number.isdigit()):
        raise click.ClickException("--establishment-number must be 4 digits")
    if organisation.urn and not organisation.urn.isdigit():
        raise click.ClickException("--urn must be digits")
