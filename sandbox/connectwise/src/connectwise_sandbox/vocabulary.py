"""Curated words the seed draws from: an IT managed-service provider's clients, staff,
boards and the problems their tickets describe. Order matters — the seed is positional."""

from __future__ import annotations

from typing import Final, NamedTuple


class MemberSpec(NamedTuple):
    identifier: str
    first_name: str
    last_name: str
    title: str
    inactive: bool = False
    license_class: str = "F"  # "F" full member, "A" API member


class StatusSpec(NamedTuple):
    name: str
    closed: bool = False


class BoardSpec(NamedTuple):
    name: str
    weight: int
    statuses: tuple[StatusSpec, ...]
    summaries: tuple[str, ...]


class PrioritySpec(NamedTuple):
    name: str
    level: str
    color: str
    weight: int


class WorkTypeSpec(NamedTuple):
    name: str
    bill_time: str  # the TimeEntry billableOption an entry of this type takes by default
    default: bool = False
    inactive: bool = False


class CompanySpec(NamedTuple):
    identifier: str
    name: str
    city: str
    state: str


class ProjectTemplate(NamedTuple):
    """A kind of project an MSP runs: its board, phases (in order) and the tickets
    (tasks) its phases hold."""

    name: str
    board: str
    phases: tuple[str, ...]
    tasks: tuple[str, ...]


class ScheduleTypeSpec(NamedTuple):
    identifier: str
    name: str


# The first two are the members tests and demos connect as; keep them first.
MEMBERS: Final = (
    MemberSpec("atech", "Alex", "Tech", "Senior Service Technician"),
    MemberSpec("bjones", "Beth", "Jones", "Service Technician"),
    MemberSpec("cmiller", "Carlos", "Miller", "Network Engineer"),
    MemberSpec("dpatel", "Divya", "Patel", "Systems Engineer"),
    MemberSpec("ewong", "Emily", "Wong", "Service Desk Analyst"),
    MemberSpec("fgarcia", "Felix", "Garcia", "Security Analyst"),
    MemberSpec("gkim", "Grace", "Kim", "Project Engineer"),
    MemberSpec("hnguyen", "Hoang", "Nguyen", "Service Desk Analyst"),
    MemberSpec("iokafor", "Ifeoma", "Okafor", "Network Engineer"),
    MemberSpec("jsmith", "Jordan", "Smith", "Service Manager"),
    MemberSpec("kbrown", "Kelly", "Brown", "Dispatcher"),
    MemberSpec("lmartin", "Luis", "Martin", "Field Technician", inactive=True),
)

# The integration's own API member: it mints impersonation keys for technicians and is
# never assigned work. Seeded after MEMBERS so their ids and keys do not move.
API_MEMBER: Final = MemberSpec(
    "syntaskio-api", "Syntaskio", "Integration", "API Member", license_class="A"
)

COMPANIES: Final = (
    CompanySpec("AcmeCorp", "Acme Corporation", "Denver", "CO"),
    CompanySpec("BlueRidgeDental", "Blue Ridge Dental Group", "Asheville", "NC"),
    CompanySpec("CedarLaw", "Cedar & Pine Law LLP", "Portland", "OR"),
    CompanySpec("DeltaLogistics", "Delta Logistics Inc.", "Memphis", "TN"),
    CompanySpec("EvergreenCU", "Evergreen Credit Union", "Olympia", "WA"),
    CompanySpec("FoxValleyMfg", "Fox Valley Manufacturing", "Appleton", "WI"),
    CompanySpec("GraniteArch", "Granite Architecture Studio", "Concord", "NH"),
    CompanySpec("HarborMed", "Harbor Medical Associates", "Baltimore", "MD"),
    CompanySpec("IronwoodCPA", "Ironwood CPA Partners", "Tulsa", "OK"),
    CompanySpec("JuniperSchools", "Juniper Charter Schools", "Boise", "ID"),
    CompanySpec("KestrelAero", "Kestrel Aerospace Components", "Wichita", "KS"),
    CompanySpec("LakesideRealty", "Lakeside Realty Group", "Madison", "WI"),
    CompanySpec("MeridianHotels", "Meridian Boutique Hotels", "Savannah", "GA"),
    CompanySpec("NorthwindTraders", "Northwind Traders", "Seattle", "WA"),
    CompanySpec("OakridgeVet", "Oakridge Veterinary Clinic", "Knoxville", "TN"),
    CompanySpec("PinnacleEng", "Pinnacle Engineering", "Phoenix", "AZ"),
    CompanySpec("QuarryFoods", "Quarry Street Foods", "Pittsburgh", "PA"),
    CompanySpec("RiversideChurch", "Riverside Community Church", "Omaha", "NE"),
    CompanySpec("SummitInsurance", "Summit Insurance Agency", "Salt Lake City", "UT"),
    CompanySpec("TidewaterMarine", "Tidewater Marine Supply", "Norfolk", "VA"),
    CompanySpec("UnionSqDesign", "Union Square Design Co.", "San Francisco", "CA"),
    CompanySpec("ValleyOrtho", "Valley Orthopedics", "Fresno", "CA"),
    CompanySpec("WillowCare", "Willow Senior Care", "Columbus", "OH"),
    CompanySpec("XcelFitness", "Xcel Fitness Clubs", "Austin", "TX"),
    CompanySpec("YorktownLib", "Yorktown Public Library", "Yorktown", "VA"),
)

PRIORITIES: Final = (
    PrioritySpec("Priority 1 - Emergency Response", "Urgent", "#FF0000", 3),
    PrioritySpec("Priority 2 - Quick Response", "High", "#FF8000", 12),
    PrioritySpec("Priority 3 - Normal Response", "Medium", "#00A651", 55),
    PrioritySpec("Priority 4 - Schedule Maintenance", "Low", "#0072BC", 20),
    PrioritySpec("Priority 5 - Next Time", "Low", "#8C8C8C", 10),
)
DEFAULT_PRIORITY: Final = "Priority 3 - Normal Response"
# What time is logged as (`/time/workTypes`); an entry without one is the default's.
WORK_TYPES: Final = (
    WorkTypeSpec("Remote Support", "Billable", default=True),
    WorkTypeSpec("Onsite Support", "Billable"),
    WorkTypeSpec("Travel", "NoCharge"),
    WorkTypeSpec("Internal Admin", "DoNotBill"),
    WorkTypeSpec("Legacy Hourly", "Billable", inactive=True),
)

BOARDS: Final = (
    BoardSpec(
        "Service Desk",
        55,
        (
            StatusSpec("New"),
            StatusSpec("Assigned"),
            StatusSpec("In Progress"),
            StatusSpec("Waiting on Client"),
            StatusSpec("Scheduled"),
            StatusSpec("Completed", closed=True),
            StatusSpec("Closed", closed=True),
        ),
        (
            "Outlook not syncing on CFO laptop",
            "Password reset for new hire",
            "User locked out of Microsoft 365 account",
            "Printer on 2nd floor jamming constantly",
            "Teams calls dropping for sales team",
            "Set up laptop for new employee",
            "Offboard departing employee and disable accounts",
            "Shared mailbox permissions for accounting",
            "OneDrive not syncing desktop folder",
            "Install Adobe Acrobat Pro on reception PC",
            "Monitor flickering on front desk workstation",
            "Cannot map network drive after password change",
            "MFA prompt not arriving on user's phone",
            "Slow boot times on warehouse PCs",
            "Calendar invites not showing for executive assistant",
            "Request for second monitor",
            "Scanner to email not working",
            "QuickBooks company file won't open",
            "Browser redirecting to unknown search page",
            "Replace cracked laptop screen",
            "Mobile phone not receiving company email",
            "Excel crashes when opening large workbook",
            "Zoom audio not working on conference room PC",
            "Distribution list update for HR",
        ),
    ),
    BoardSpec(
        "Network Operations",
        15,
        (
            StatusSpec("New"),
            StatusSpec("Acknowledged"),
            StatusSpec("In Progress"),
            StatusSpec("Waiting on Vendor"),
            StatusSpec("Monitoring"),
            StatusSpec("Resolved", closed=True),
            StatusSpec("Closed", closed=True),
        ),
        (
            "Site-to-site VPN to branch office down",
            "Intermittent Wi-Fi drops in conference rooms",
            "Firewall firmware update required",
            "ISP circuit flapping at main office",
            "Switch port errors on core switch",
            "Configure guest VLAN for lobby",
            "Renew SSL certificate on remote access gateway",
            "High latency to cloud ERP",
            "Replace failing access point in warehouse",
            "DNS resolution failures for internal hosts",
            "Add firewall rule for new payment terminal",
            "Backup internet failover not triggering",
        ),
    ),
    BoardSpec(
        "Projects",
        10,
        (
            StatusSpec("New"),
            StatusSpec("Planning"),
            StatusSpec("In Progress"),
            StatusSpec("On Hold"),
            StatusSpec("Completed", closed=True),
            StatusSpec("Closed", closed=True),
        ),
        (
            "Migrate file server to SharePoint Online",
            "Windows 11 upgrade for accounting department",
            "Replace aging core switch",
            "Deploy new phone system",
            "Server room UPS replacement",
            "Intune enrollment for company phones",
            "Move to new office suite - network cabling",
            "Decommission legacy Exchange server",
            "Roll out password manager company-wide",
        ),
    ),
    BoardSpec(
        "Security Operations",
        10,
        (
            StatusSpec("New"),
            StatusSpec("Triage"),
            StatusSpec("Investigating"),
            StatusSpec("Remediation"),
            StatusSpec("Closed", closed=True),
        ),
        (
            "Suspicious sign-in from unfamiliar country",
            "Phishing email reported by user",
            "EDR alert: suspicious PowerShell execution",
            "Disable compromised mailbox forwarding rule",
            "Quarterly vulnerability scan findings",
            "Review admin accounts without MFA",
            "Ransomware simulation follow-up training",
            "Expired antivirus definitions on laptops",
        ),
    ),
    BoardSpec(
        "Alerts",
        10,
        (
            StatusSpec("New"),
            StatusSpec("In Progress"),
            StatusSpec("Closed", closed=True),
        ),
        (
            "Replace failing disk in NAS",
            "Disk space low on file server",
            "Backup job failed overnight",
            "Server unresponsive to ping",
            "High CPU on SQL server",
            "Windows updates failed on domain controller",
            "RAID array degraded on hypervisor",
            "UPS on battery power",
            "Certificate expiring in 14 days",
        ),
    ),
)

DETAILS: Final = (
    "Started this morning and is affecting their whole day.",
    "User has already tried restarting the device.",
    "Happens a few times a day, no clear pattern yet.",
    "Please call the contact before going on site.",
    "Reported by email; screenshots attached to the original message.",
    "Business impact is moderate; a workaround is in place.",
    "Client asked for an update by end of day.",
    "Raised automatically by the monitoring platform.",
    "Same issue was seen last month on another machine.",
    "Vendor support case may be needed.",
)

CONTACT_FIRST_NAMES: Final = (
    "Avery", "Blake", "Casey", "Dana", "Elliot", "Frances", "Gabe", "Harper", "Isla",
    "Jamie", "Kai", "Logan", "Morgan", "Noor", "Owen", "Parker", "Quinn", "Riley",
    "Sam", "Taylor",
)  # fmt: skip
CONTACT_LAST_NAMES: Final = (
    "Anderson", "Bishop", "Chen", "Diaz", "Ellis", "Fischer", "Gupta", "Hughes", "Ibarra",
    "Johansson", "Khan", "Lopez", "Murphy", "Novak", "O'Brien", "Price", "Rossi", "Silva",
    "Thompson", "Walsh",
)  # fmt: skip

SOURCES: Final = ("Email", "Phone", "Portal", "Monitoring")
SEVERITIES: Final = ("Low", "Medium", "High")


# Project boards are service boards with `projectFlag` set; seeded after BOARDS so the
# service boards' and statuses' ids do not move. Their summaries are unused: project
# tickets take theirs from PROJECT_TEMPLATES.
PROJECT_BOARDS: Final = (
    BoardSpec(
        "Professional Services",
        0,
        (
            StatusSpec("New"),
            StatusSpec("Scheduled"),
            StatusSpec("In Progress"),
            StatusSpec("Waiting on Client"),
            StatusSpec("Completed", closed=True),
            StatusSpec("Closed", closed=True),
        ),
        (),
    ),
    BoardSpec(
        "Infrastructure Projects",
        0,
        (
            StatusSpec("New"),
            StatusSpec("Planning"),
            StatusSpec("In Progress"),
            StatusSpec("On Hold"),
            StatusSpec("Done", closed=True),
        ),
        (),
    ),
)

# A project's own status (not its tickets'): `closedFlag` follows `closed`.
PROJECT_STATUSES: Final = (
    StatusSpec("Open"),
    StatusSpec("In Progress"),
    StatusSpec("On Hold"),
    StatusSpec("Closed", closed=True),
)
# `/project/phaseStatuses`: a phase's state. The seed uses the first three (ids 1-3).
PHASE_STATUSES: Final = (
    StatusSpec("Open"),
    StatusSpec("In Progress"),
    StatusSpec("Completed", closed=True),
    StatusSpec("Cancelled", closed=True),
)
PROJECT_ROLES: Final = ("Project Manager", "Lead Engineer", "Technician")

PROJECT_TEMPLATES: Final = (
    ProjectTemplate(
        "Microsoft 365 Migration",
        "Professional Services",
        ("Discovery", "Pilot", "Migration", "Hypercare"),
        (
            "Inventory mailboxes and shared drives",
            "Verify domain and DNS records",
            "Migrate pilot group mailboxes",
            "Move department file shares to SharePoint",
            "Configure Teams and channel structure",
            "Train staff on OneDrive and Teams",
            "Decommission old mail server",
        ),
    ),
    ProjectTemplate(
        "Network Refresh",
        "Infrastructure Projects",
        ("Site Survey", "Procurement", "Installation", "Handover"),
        (
            "Survey wiring closets and cabling",
            "Order switches and access points",
            "Stage and configure new core switch",
            "Cut over VLANs to new switches",
            "Heat-map Wi-Fi coverage after install",
            "Update network documentation",
        ),
    ),
    ProjectTemplate(
        "Windows 11 Rollout",
        "Professional Services",
        ("Assessment", "Image Build", "Deployment", "Closeout"),
        (
            "Check hardware compatibility",
            "Build and test the Windows 11 image",
            "Upgrade first wave of workstations",
            "Upgrade remaining workstations",
            "Fix line-of-business app issues after upgrade",
        ),
    ),
    ProjectTemplate(
        "Backup and DR Implementation",
        "Infrastructure Projects",
        ("Design", "Implementation", "Testing"),
        (
            "Define recovery objectives with the client",
            "Install backup appliance",
            "Configure offsite replication",
            "Run a full restore test",
            "Write the disaster recovery runbook",
        ),
    ),
    ProjectTemplate(
        "Security Hardening",
        "Professional Services",
        ("Assessment", "Remediation", "Review"),
        (
            "Enforce MFA for all users",
            "Roll out EDR agent to servers",
            "Remove local admin rights",
            "Configure conditional access policies",
            "Review firewall rules",
        ),
    ),
    ProjectTemplate(
        "Office Relocation",
        "Infrastructure Projects",
        ("Planning", "Build-out", "Move", "Wrap-up"),
        (
            "Plan the network and phone layout",
            "Run cabling at the new site",
            "Install rack, firewall and switches",
            "Move workstations and printers",
            "Port phone numbers to the new site",
        ),
    ),
)

# Schedule entry types: "S" schedules a member on a ticket (service or project), "C" is a
# CRM activity whose `objectId` is an activity id, not a ticket's.
SCHEDULE_TYPES: Final = (
    ScheduleTypeSpec("S", "Service"),
    ScheduleTypeSpec("C", "Activity"),
)
ACTIVITY_NAMES: Final = (
    "Quarterly business review",
    "Follow-up call about renewal",
    "Onboarding meeting with new client contact",
    "Vendor webinar",
    "Internal team meeting",
)
