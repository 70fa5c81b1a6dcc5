"""Certificates: certs:add|remove|report APP, certs:auto APP (ACME), certs:hsts APP. Through paas.services.certs
and paas.proxy.autocert."""

from __future__ import annotations

import click

from . import cli, context, emit_json, json_option, progress, user
from .permissions import needs


@cli.command("certs:add")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("crt", metavar="CRT")
@click.argument("key", metavar="KEY")
@click.option("--partial", is_flag=True, help="Install it although it does not cover every custom domain of the "
              "app (those stay on plain HTTP).")
def add_cmd(app, crt, key, partial):
    """Serve the app over HTTPS with a certificate: CRT is the PEM chain (intermediates kept), KEY its unencrypted
    private key. `-` for both reads one PEM stream holding both from stdin (over SSH:
    `cat site.crt site.key | ssh paas@HOST certs:add APP - -`). Plain HTTP to the names it covers redirects."""
    from ..errors import UserError
    from ..services import certs

    who = user()
    if (crt == "-") != (key == "-"):
        raise UserError("give both CRT and KEY as files, or both as - (one PEM stream on stdin)",
                        "e.g. cat site.crt site.key | paas certs:add APP - -")
    if crt == "-":
        cert_pem = key_pem = click.get_binary_stream("stdin").read(certs.MAX_PEM_BYTES + 1)
        if len(cert_pem) > certs.MAX_PEM_BYTES:
            raise UserError("stdin holds more than 1 MiB: not a PEM chain and key", "send the .crt and .key only")
    elif not who.is_admin:  # a path names a file on the server, which only admins may read
        raise UserError("over SSH the certificate and key come from stdin",
                        "run `cat site.crt site.key | ssh paas@HOST certs:add APP - -`")
    else:
        cert_pem, key_pem = certs.read_pem(crt, "certificate"), certs.read_pem(key, "key")
    _summary(certs.add(context(), who, app, cert_pem, key_pem, via="cli", partial=partial))


def _summary(report: dict) -> None:
    cert = report["certificate"]
    progress(f"{report['app']}: {cert['source']} certificate from {cert['issuer']}, expires {cert['not_after']} "
             f"({cert['days_left']} days)")
    progress(f"HTTPS: {', '.join(report['https_names'])}")
    if report["http_only_names"]:
        progress(f"plain HTTP only (not covered): {', '.join(report['http_only_names'])}")


@cli.command("certs:remove")
@needs("manage")
@click.argument("app", metavar="APP")
def remove_cmd(app):
    """Stop serving the app's certificate: its names answer over plain HTTP again."""
    from ..services import certs

    certs.remove(context(), user(), app, via="cli")
    progress(f"{app} answers over plain HTTP")


@cli.command("certs:report")
@needs("view")
@click.argument("app", metavar="APP")
@json_option
def report_cmd(app, as_json):
    """The app's certificate (issuer, names, expiry, source manual/acme), which names answer over HTTPS, and the
    state of automatic certificates (last attempt, error, next attempt)."""
    from ..services import certs

    report = certs.report(context(), app)
    if as_json:
        emit_json(report)
        return
    cert = report["certificate"]
    click.echo(f"=====> {app} certificate")
    if cert is None:
        click.echo("certificate:      none (plain HTTP)")
    else:
        click.echo(f"source:           {cert['source']}")
        click.echo(f"issuer:           {cert['issuer']}")
        click.echo(f"names:            {' '.join(cert['names'])}")
        click.echo(f"expires:          {cert['not_after']} ({cert['days_left']} days)")
        click.echo(f"fingerprint:      {cert['fingerprint']}")
    click.echo(f"https names:      {' '.join(report['https_names']) or '-'}")
    click.echo(f"http-only names:  {' '.join(report['http_only_names']) or '-'}")
    click.echo(f"hsts:             {('max-age=' + str(report['hsts_max_age'])) if report['hsts_max_age'] else 'off'}")
    click.echo(f"auto (acme):      {'on' if report['auto'] else 'off'}")
    acme = report["acme"]
    if acme:
        click.echo(f"last attempt:     {acme['last_attempt_at'] or '-'}")
        if acme["last_error"]:
            click.echo(f"last error:       {acme['last_error']}")
            click.echo(f"next attempt:     {acme['next_attempt_at'] or '-'}")


@cli.command("certs:auto")
@needs("manage")
@click.argument("app", metavar="APP")
@click.option("--off", is_flag=True, help="Stop renewing automatically (the current certificate stays until removed).")
def auto_cmd(app, off):
    """Get the app a certificate over ACME now (HTTP-01 through nginx: its domains must point here) and renew it
    automatically before it expires (certs.renew_days). The CA is certs.acme_directory of paas.yml."""
    from ..proxy import autocert
    from ..services import certs

    ctx = context()
    if not off:
        autocert.check_names(ctx, app)
    autocert.set_auto(ctx, user(), app, not off, via="cli")
    if off:
        progress(f"{app}: automatic certificates off")
        return
    if not autocert.routed(ctx, app):
        progress(f"{app} is not running: paasd gets its certificate after its first deploy")
        return
    reason = autocert.due(ctx, app)
    if reason is None:
        progress(f"{app}: its certificate is valid and covers its names; renewed automatically before expiry")
        return
    autocert.obtain_for(ctx, app, reason=reason, progress=progress, actor=user().name)
    _summary(certs.report(ctx, app))


@cli.command("certs:hsts")
@needs("manage")
@click.argument("app", metavar="APP")
@click.argument("max_age", metavar="SECONDS", type=click.IntRange(0, 10 ** 9))
def hsts_cmd(app, max_age):
    """Send Strict-Transport-Security with max-age=SECONDS on the app's HTTPS answers (0: off). Browsers then
    refuse plain HTTP to it for that long: turn it on once HTTPS works (a year: 31536000)."""
    from ..services import certs

    certs.set_hsts(context(), user(), app, max_age, via="cli")
    progress(f"{app}: HSTS {'max-age=' + str(max_age) if max_age else 'off'}")
