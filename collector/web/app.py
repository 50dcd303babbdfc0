"""The web page: Flask views over the reports' functions (server-rendered, no script on the page).

Flask is the well-kept, synchronous choice here: the reports are synchronous SQLAlchemy calls, so an
async framework would only add a thread hop. Its signed-cookie session carries the account name and
the language, nothing personal; Flask-WTF's CSRFProtect guards every POST. Filters that name a person
(the trace's employee) and every export travel in POST bodies, so no URL and no access log holds them.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, TypeVar, cast

from flask import Flask, Response, abort, g, redirect, render_template, request, send_file, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response as BaseResponse

from collector import report
from collector.reports import audit, output
from collector.reports.common import ReportError, locations, parse_day, period
from collector.reports.compliance import NOT_SCANNED, UNKNOWN, Compliance, compliance
from collector.reports.export import COLUMNS as EXPORT_COLUMNS
from collector.reports.export import export_rows
from collector.reports.locations import COLUMNS as LOCATION_COLUMNS
from collector.reports.locations import location_rows
from collector.reports.roster import Roster, load_roster
from collector.reports.trace import trace
from collector.settings import Settings
from collector.store import Store
from collector.web import accounts, i18n
from collector.web.accounts import AUDIT_ROLES, SUPPRESS_BELOW, TRACE_ROLES, User
from collector.web.throttle import LoginThrottle
from device.privacy import load_key

View = TypeVar("View", bound=Callable[..., Any])
# What History shows on screen; the export streams every row.
HISTORY_ROWS = 500
# Exports are written to a temporary file before they are sent; below this they stay in memory.
SPOOL_BYTES = 8 << 20
# Offline first, then what is silent, then the rest (issue 19: offline devices first).
PRESENCE_ORDER = {"offline": 0, "stale": 1, "unknown": 2, "online": 3}
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def create_app(
    settings: Settings, store: Store, *, refresh_s: int = 30, clock: Callable[[], float] = time.time
) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=accounts.secret_key(store),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    CSRFProtect(app)
    throttle = LoginThrottle(clock)
    tz = settings.site.tz

    def roster() -> Roster:
        path = settings.privacy.site_key_file
        return load_roster(store, None if path is None else load_key(path, create=False))

    def lang() -> str:
        return i18n.language(session.get("lang"))

    def _(text: str, **values: object) -> str:
        return i18n.gettext(lang(), text, **values)

    @app.before_request
    def load_user() -> None:
        name = session.get("user")
        g.user = accounts.find(store, name) if isinstance(name, str) else None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.context_processor
    def helpers() -> dict[str, Any]:
        code = lang()
        return {
            "_": _,
            "lang": code,
            "languages": i18n.LANGUAGES,
            "user": g.get("user"),
            "may_trace": g.get("user") is not None and g.user.role in TRACE_ROLES,
            "may_audit": g.get("user") is not None and g.user.role in AUDIT_ROLES,
            "num": lambda v: i18n.number(code, v),
            "when": lambda v: i18n.when(code, v, tz),
            "count": lambda v: _suppressed(code, v, g.user),
            "word": lambda v: "–" if v is None else _(str(v)),
            "suppress_below": SUPPRESS_BELOW,
        }

    def signed_in(*roles: str) -> Callable[[View], View]:
        def wrap(view: View) -> View:
            @functools.wraps(view)
            def inner(*args: Any, **kwargs: Any) -> Any:
                if g.user is None:
                    return redirect(url_for("login"))
                if roles and g.user.role not in roles:
                    abort(403)
                return view(*args, **kwargs)

            return cast(View, inner)

        return wrap

    @app.errorhandler(CSRFError)
    def csrf_refused(_exc: CSRFError) -> tuple[str, int]:
        message = _("The form has expired or was not sent from this page: please try again.")
        return render_template("error.html", title=_("Request refused"), message=message), 400

    @app.errorhandler(403)
    def forbidden(_exc: Exception) -> tuple[str, int]:
        message = _("Your role may not open this page.")
        return render_template("error.html", title=_("Request refused"), message=message), 403

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> tuple[str, int]:
        return render_template("error.html", title=_("Page not found"), message=request.path[:80]), 404

    @app.errorhandler(ReportError)
    def report_error(exc: ReportError) -> tuple[str, int]:
        return render_template("error.html", title=_("Error"), message=str(exc)), 400

    @app.get("/")
    def home() -> BaseResponse:
        return redirect(url_for("today"))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
        if request.method == "GET":
            return render_template("login.html")
        name = request.form.get("name", "")[: accounts.NAME_MAX]
        wait_s = throttle.wait_s(name)
        if wait_s:
            app.logger.warning("login refused: too many failed attempts for the name, %d s to wait", wait_s)
            page = render_template("login.html", wait_s=wait_s)
            return page, 429, {"Retry-After": str(wait_s)}
        user = accounts.authenticate(store, name, request.form.get("password", ""))
        if user is None:
            throttle.failed(name)
            app.logger.warning("login refused")
            return render_template("login.html", failed=True), 401
        throttle.succeeded(name)
        keep = session.get("lang")
        session.clear()  # a new session at login: nothing set before it carries over
        session.update(user=user.name, lang=i18n.language(keep))
        session.permanent = True
        return redirect(url_for("today"))

    @app.post("/logout")
    def logout() -> BaseResponse:
        keep = session.get("lang")
        session.clear()
        session["lang"] = i18n.language(keep)
        return redirect(url_for("login"))

    @app.post("/lang")
    def set_language() -> BaseResponse:
        session["lang"] = i18n.language(request.form.get("lang"))
        back = request.form.get("next", "")
        # Only a path of this site: never a redirect elsewhere.
        return redirect(back if back.startswith("/") and not back.startswith("//") else url_for("today"))

    @app.get("/today")
    @signed_in()
    def today() -> str:
        now = clock()
        day = dt.datetime.fromtimestamp(now, tz).date()
        result = compliance(store, roster(), day, tz)
        return render_template(
            "today.html",
            report=result,
            day=i18n.day(lang(), day),
            updated=i18n.clock(lang(), dt.datetime.fromtimestamp(now, dt.UTC), tz),
            refresh_s=refresh_s,
            by_team=_missing_by(result, "team"),
            by_place=_missing_by(result, "assigned"),
            states=(NOT_SCANNED, UNKNOWN),
        )

    @app.get("/fleet")
    @signed_in()
    def fleet() -> str:
        return render_template("fleet.html", devices=fleet_rows(store, settings, clock()))

    def history_filters() -> dict[str, Any]:
        source = request.form if request.method == "POST" else {}
        default = dt.datetime.fromtimestamp(clock(), tz).date().isoformat()
        start = str(source.get("from") or default)
        end = str(source.get("to") or start)
        parse_day(start), parse_day(end)
        return {
            "from": start,
            "to": end,
            "location": str(source.get("location") or ""),
            "team": str(source.get("team") or ""),
        }

    def history_rows(filters: dict[str, Any], people: Roster) -> Iterator[tuple[Any, ...]]:
        """The reports' export rows for these filters; a team keeps its employees' rows only."""
        start, end = period(filters["from"], filters["to"], tz)
        rows = export_rows(
            store,
            people,
            tz,
            start=start,
            end=end,
            location_ids=[filters["location"]] if filters["location"] else (),
        )
        if not filters["team"]:
            return rows
        team = {p.employee_no for p in people.people.values() if p.team == filters["team"]}
        at = EXPORT_COLUMNS.index("employee_no")
        return (r for r in rows if r[at] in team)

    @app.route("/history", methods=["GET", "POST"])
    @signed_in()
    def history() -> str:
        filters = history_filters()
        people = roster()
        rows = history_rows(filters, people)
        shown: list[tuple[Any, ...]] = []
        total = 0
        counts: dict[str, list[Any]] = {}
        person_at = EXPORT_COLUMNS.index("employee_no"), EXPORT_COLUMNS.index("masked_id")
        for row in rows:
            total += 1
            if g.user.sees_people:
                if len(shown) < HISTORY_ROWS:
                    shown.append(row)
            else:
                # The board sees scans and distinct people per location, never a row.
                entry = counts.setdefault(row[1] or "-", [0, set()])
                entry[0] += 1
                entry[1].add(row[person_at[0]] or row[person_at[1]])
        return render_template(
            "history.html",
            filters=filters,
            rows=shown,
            total=total,
            limit=HISTORY_ROWS,
            counts={k: (v[0], len(v[1])) for k, v in sorted(counts.items())},
            places=sorted((loc.label, loc.location_id) for loc in locations(store).values()),
            teams=sorted({p.team for p in people.people.values() if p.team}),
        )

    @app.post("/history/export")
    @signed_in(*accounts.PEOPLE_ROLES)
    def history_export() -> Response | tuple[str, int]:
        filters = history_filters()
        fmt = request.form.get("format")
        purpose = request.form.get("purpose", "").strip()
        if fmt not in ("csv", "xlsx") or not purpose:
            return render_template(
                "error.html", title=_("Error"), message=_("Purpose of the export") + " ?"
            ), 400
        rows = history_rows(filters, roster())
        written = 0
        complete = False

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal written
            for row in rows:
                written += 1
                yield row

        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (sent, then closed)
        try:
            _write(fmt, EXPORT_COLUMNS, counted(), spool, title="scans")
            complete = True
        finally:
            # As the command does: an export that failed half-way is audited with what it wrote.
            audit.append(
                store,
                actor=g.user.name,
                role=g.user.role,
                action="export",
                purpose=purpose,
                query={
                    "from": filters["from"],
                    "to": filters["to"],
                    "locations": [filters["location"]] if filters["location"] else [],
                    "team": filters["team"] or None,
                    "format": fmt,
                    "complete": complete,
                    "via": "web",
                },
                row_count=written,
                wall=clock(),
            )
        return _download(spool, f"scans-{filters['from']}-{filters['to']}.{fmt}", fmt)

    @app.route("/trace", methods=["GET", "POST"])
    @signed_in(*TRACE_ROLES)
    def trace_page() -> str | tuple[str, int]:
        default = dt.datetime.fromtimestamp(clock(), tz).date()
        form = {
            "employee": "",
            "subject": "",
            "from": (default - dt.timedelta(days=14)).isoformat(),
            "to": default.isoformat(),
            "case": "",
        }
        if request.method == "GET":
            return render_template("trace.html", form=form, result=None)
        form.update({k: request.form.get(k, "").strip() for k in form})
        if not form["case"]:
            return render_template("trace.html", form=form, result=None, missing_case=True), 400
        start, end = period(form["from"], form["to"], tz)
        result = trace(
            store,
            roster(),
            settings.trace,
            tz,
            start=start,
            end=end,
            subject=form["subject"] or None,
            employee_no=form["employee"] or None,
        )
        audit.append(
            store,
            actor=g.user.name,
            role=g.user.role,
            action="trace",
            purpose=form["case"],
            query={
                "employee": form["employee"] or None,
                "subject": form["subject"] or None,
                "from": form["from"],
                "to": form["to"],
                "via": "web",
            },
            row_count=len(result.contacts),
            wall=clock(),
        )
        who = result.employee_no or f"{result.subjects[0][:12]}…"
        return render_template("trace.html", form=form, result=result, who=who)

    @app.get("/locations")
    @signed_in()
    def locations_page() -> str | Response:
        rows = location_rows(store, now=clock(), heartbeat_s=settings.presence.heartbeat_s)
        fmt = request.args.get("format")
        if fmt in ("csv", "xlsx"):
            # The province's list of places (no person in it): a plain GET link, not audited.
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            _write(fmt, LOCATION_COLUMNS, (r.cells(tz) for r in rows), spool, title="locations")
            return _download(spool, f"locations.{fmt}", fmt)
        return render_template("locations.html", rows=rows)

    @app.get("/audit")
    @signed_in(*AUDIT_ROLES)
    def audit_page() -> str:
        return render_template("audit.html", check=audit.verify(store), entries=audit.entries(store, 200))

    return app


def _suppressed(lang: str, value: int, user: User | None) -> str:
    """A count as the viewer may see it: the board and auditors see under SUPPRESS_BELOW as `<5`."""
    if user is not None and not user.sees_people and 0 < value < SUPPRESS_BELOW:
        return f"<{SUPPRESS_BELOW}"
    return i18n.number(lang, value)


def _missing_by(result: Compliance, key: str) -> dict[str, list[Any]]:
    """The people not scanned yet (not scanned or unknown), grouped by team or by assigned bus/gate."""
    out: defaultdict[str, list[Any]] = defaultdict(list)
    for person in result.people:
        if person.state in (NOT_SCANNED, UNKNOWN):
            out[getattr(person, key) or "-"].append(person)
    return dict(sorted(out.items()))


def fleet_rows(store: Store, settings: Settings, now: float) -> list[dict[str, Any]]:
    """Every device with its presence, gaps and losses and its location's address; offline first."""
    state = report.status(store, now, settings.presence.heartbeat_s)
    open_gaps: defaultdict[str, int] = defaultdict(int)
    losses: defaultdict[str, int] = defaultdict(int)
    for stream in report.gaps(store):
        open_gaps[stream["device_id"]] += len(stream["open"])
        losses[stream["device_id"]] += sum(k["to_seq"] - k["from_seq"] + 1 for k in stream["known_losses"])
    places = locations(store)
    rows = []
    for device in state["devices"]:
        loc = places.get(device["location_id"])
        parts = () if loc is None else (loc.address, loc.ward, loc.district, loc.province)
        address = ", ".join(v for v in parts if v)
        heartbeat = device["last_heartbeat_at"] or device["last_seen_at"]
        rows.append(
            {
                **device,
                "location": loc.label if loc else device["location_id"],
                "plate": loc.plate if loc else None,
                "address": address,
                "open_gaps": open_gaps[device["device_id"]],
                "lost_seqs": losses[device["device_id"]],
                "heartbeat": None if heartbeat is None else dt.datetime.fromisoformat(heartbeat),
            }
        )
    return sorted(rows, key=lambda r: (PRESENCE_ORDER.get(r["presence"], 2), r["location"], r["device_id"]))


def _write(
    fmt: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], spool: IO[bytes], *, title: str
) -> None:
    """The reports' writers (CSV with a BOM, streamed XLSX) into the spool file."""
    if fmt == "xlsx":
        output.write_xlsx(columns, rows, spool, title=title)
    else:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        output.write_csv(columns, rows, text)
        text.detach()
    spool.seek(0)


def _download(spool: IO[bytes], name: str, fmt: str) -> Response:
    mimetype = XLSX_TYPE if fmt == "xlsx" else "text/csv; charset=utf-8"
    response = send_file(spool, mimetype=mimetype, as_attachment=True, download_name=name)
    response.call_on_close(spool.close)
    return response
