"""CodeBuild: projects from CloudFormation, and image builds simulated phase by phase.

A build runs the contract of ``container/buildspec.yml`` (``SimulatedBuild``): nothing is really
built; a simulated container runs whatever image its job definition names.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.emulator.cloudformation import lower_first
from local.emulator.gap import Gap, Patch

log = logging.getLogger("local.emulator")


_codebuild_model: list[type] = []
PROJECT_TYPE = "AWS::CodeBuild::Project"


def codebuild_project_model() -> type:
    """CODEBUILD_FROM_CLOUDFORMATION: moto's CloudFormation has no ``AWS::CodeBuild::Project``
    (the stack fails on a ``Fn::GetAtt`` of one). This model creates the project through
    CodeBuild's backend as CloudFormation would (named ``<stack>-<LogicalId>-<suffix>`` without
    ``Name``; ``Ref`` its name, ``Fn::GetAtt Arn`` its ARN). It is not a subclass of moto's
    ``CloudFormationModel`` (that would register it with moto for good): ``project_model_patches``
    adds it to moto's model lists, and removing them removes it."""
    if _codebuild_model:
        return _codebuild_model[0]
    from moto.codebuild.models import codebuild_backends

    class CodeBuildProject:
        def __init__(self, name: str, arn: str) -> None:
            self.name, self.arn = name, arn

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_type() -> str:
            return PROJECT_TYPE

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.arn

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CodeBuildProject:
            properties = cloudformation_json["Properties"]
            name = properties.get("Name") or resource_name
            source = lower_first(properties["Source"])
            if "buildSpec" in source:  # the API spells it buildspec
                source["buildspec"] = source.pop("buildSpec")
            project = codebuild_backends[account_id][region_name].create_project(
                project_name=name,
                description=properties.get("Description"),
                project_source=source,
                artifacts=lower_first(properties["Artifacts"]),
                environment=lower_first(properties["Environment"]),
                service_role=properties["ServiceRole"],
                tags=lower_first(properties.get("Tags")),
                cache=lower_first(properties.get("Cache")),
                timeout=properties.get("TimeoutInMinutes"),
                queued_timeout=properties.get("QueuedTimeoutInMinutes"),
                source_version=properties.get("SourceVersion"),
                logs_config=lower_first(properties.get("LogsConfig")),
                vpc_config=lower_first(properties.get("VpcConfig")),
            )
            return cls(name, str(project["arn"]))

        @classmethod
        def update_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
            return None  # as moto's CloudFormationModel: not updated in place

        @classmethod
        def delete_from_cloudformation_json(cls, *args: Any, **kwargs: Any) -> None:
            return None  # as moto's CloudFormationModel: the project stays

        def is_created(self) -> bool:
            return True

    _codebuild_model.append(CodeBuildProject)
    return CodeBuildProject


def project_model_patches() -> list[Patch]:
    """CODEBUILD_FROM_CLOUDFORMATION: moto's CloudFormation knows the project model. moto caches
    these three lists (``lru_cache``); the replacements compute them from moto's models each
    time, so moto's own caches never hold the project model."""
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    model = codebuild_project_model()

    def model_list() -> list[Any]:
        return [*CloudFormationModel.__subclasses__(), model]

    def model_map() -> dict[str, Any]:
        return {m.cloudformation_type(): m for m in model_list()}

    def name_type_map() -> dict[str, str]:
        return {m.cloudformation_type(): m.cloudformation_name_type() for m in model_list()}

    return [
        Patch(parsing, "get_model_list", model_list),
        Patch(parsing, "get_model_map", model_map),
        Patch(parsing, "get_name_type_map", name_type_map),
    ]


#: How long a simulated image build runs before its outcome is known.
BUILD_SECONDS = 1.0
#: A file of this name anywhere in an application build makes its simulated image build fail;
#: the file's first line is the reason the build log gives.
FAIL_BUILD_MARKER = "FAIL_BUILD"
#: What the simulated build needs from the project's source bundle: its build spec is the
#: project's ``buildspec``; these are the files that build spec runs.
SOURCE_FILES = {"PRE_BUILD": "agent/build.py", "BUILD": "container/Dockerfile"}
#: The checks ``container/buildspec.yml`` makes of its inputs before anything is built.
BUILD_VERSION_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
ARTIFACT_URI_PATTERN = re.compile(
    r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+\.(tar\.gz|tgz|zip))$"
)
REPOSITORY_URI_PATTERN = re.compile(
    r"^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([a-z0-9][a-z0-9._/-]*)$"
)
UBUNTU_SNAPSHOT_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
BUILD_PHASES = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
    "COMPLETED",
)
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
#: Every read and change of a build's record (StartBuild, the simulated run, BatchGetBuilds).
_builds_lock = threading.RLock()


class BuildFailure(Exception):
    """A simulated build phase failed: its phase context's status code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _iso_now() -> str:
    from moto.core.utils import iso_8601_datetime_with_milliseconds

    return str(iso_8601_datetime_with_milliseconds())


def _sha256(data: bytes) -> str:

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _s3_object(account_id: str, region: str, bucket: str, key: str) -> bytes | None:
    """An object's bytes in the emulated S3, None when the bucket or key does not exist."""
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[account_id][get_partition(region)]
    try:
        found = backend.get_object(bucket, key)
    except Exception:  # no such bucket
        return None
    return None if found is None else bytes(found.value)


def archive_members(data: bytes, name: str) -> dict[str, bytes]:
    """The files of an application build (a .tar.gz/.tgz or a .zip) by path; raises
    BuildFailure when it is neither, as ``tar``/``unzip`` would fail on it."""
    import tarfile
    import zipfile

    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar if m.isfile()}
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise BuildFailure(
            "COMMAND_EXECUTION_ERROR", f"the application build {name} cannot be unpacked: {exc}"
        ) from exc


def _manifest(version: str, artifact: bytes) -> tuple[str, str]:
    """A small, valid image manifest (Docker v2 schema 2) for the build: (text, digest)."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"dcvfleet.build-version": version}},
            "rootfs": {"type": "layers", "diff_ids": [_sha256(artifact)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _sha256(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(artifact),
                    "digest": _sha256(artifact),
                }
            ],
        },
        indent=3,
    )
    return manifest, _sha256(manifest.encode())


@dataclass
class SimulatedBuild:
    """One StartBuild of a project: the record BatchGetBuilds returns (moto's, kept in step)."""

    account_id: str
    region: str
    project: dict[str, Any]  # the project's metadata
    record: dict[str, Any]  # moto's build record
    log: list[str] = field(default_factory=list)
    source_files: set[str] | None = None  # the source bundle's files (None: no source)
    artifact: bytes = b""  # the application build, once downloaded
    exported: list[dict[str, str]] = field(default_factory=list)  # once the image is pushed

    @property
    def variables(self) -> dict[str, str]:
        return {
            v["name"]: str(v.get("value", ""))
            for v in self.record["environment"].get("environmentVariables", [])
        }

    def say(self, line: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())
        self.log.append(f"[Container] {stamp} {line}")

    # -- the phases ---------------------------------------------------------------------------
    def download_source(self) -> None:
        source = self.project.get("source") or {}
        if source.get("type") == "NO_SOURCE":
            return
        if source.get("type") != "S3":
            raise BuildFailure(
                "CLIENT_ERROR", f"local stack: a {source.get('type')} source is not simulated"
            )
        bucket, _, key = str(source.get("location", "")).partition("/")
        bundle = _s3_object(self.account_id, self.region, bucket, key)
        if bundle is None:
            raise BuildFailure(
                "CLIENT_ERROR",
                f"error while downloading key {key}, error: NoSuchKey: The specified key does"
                " not exist. for primary source and source version",
            )
        files = archive_members(bundle, key)
        buildspec = str(source.get("buildspec") or "buildspec.yml")
        if "\n" not in buildspec and buildspec not in files:
            raise BuildFailure(
                "YAML_FILE_ERROR", f"stat {buildspec}: no such file or directory in {key}"
            )
        self.source_files = set(files)

    def pre_build(self) -> None:
        variables = self.variables
        version = variables.get("BUILD_VERSION", "")
        artifact_uri = variables.get("BUILD_ARTIFACT_S3_URI", "")
        problems = []
        if not BUILD_VERSION_PATTERN.match(version):
            problems.append(f"BUILD_VERSION '{version}' is not a Docker tag")
        if version == "latest":
            problems.append("BUILD_VERSION must not be 'latest'")
        if not ARTIFACT_URI_PATTERN.match(artifact_uri):
            problems.append(
                f"BUILD_ARTIFACT_S3_URI '{artifact_uri}' is not s3://bucket/key.tar.gz or .zip"
            )
        repository_uri = variables.get("IMAGE_REPOSITORY_URI", "")
        if not REPOSITORY_URI_PATTERN.match(repository_uri):
            problems.append(f"IMAGE_REPOSITORY_URI '{repository_uri}' is not an ECR repository URI")
        snapshot = variables.get("UBUNTU_SNAPSHOT", "")
        if not UBUNTU_SNAPSHOT_PATTERN.match(snapshot):
            problems.append(
                f"UBUNTU_SNAPSHOT '{snapshot}' is not an Ubuntu snapshot id (YYYYMMDDTHHMMSSZ)"
            )
        if problems:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR", "; ".join(f"buildspec: {p}" for p in problems)
            )
        tags = self._repository_images()
        if tags is not None and version in tags:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR", f"buildspec: {repository_uri}:{version} already exists"
            )
        bucket, key = ARTIFACT_URI_PATTERN.match(artifact_uri).group(1, 2)  # type: ignore[union-attr]
        artifact = _s3_object(self.account_id, self.region, bucket, key)
        if artifact is None:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"fatal error: An error occurred (404) when calling the HeadObject operation: Key"
                f' "{key}" does not exist (aws s3 cp {artifact_uri})',
            )
        self.artifact = artifact
        self._needs("PRE_BUILD")

    def build(self) -> None:
        self._needs("BUILD")
        key = ARTIFACT_URI_PATTERN.match(self.variables["BUILD_ARTIFACT_S3_URI"]).group(2)  # type: ignore[union-attr]
        files = archive_members(self.artifact, key)
        for path, content in sorted(files.items()):
            if path.rsplit("/", 1)[-1] == FAIL_BUILD_MARKER:
                text = content.decode(errors="replace").strip().splitlines()
                reason = text[0] if text else "the application build says it cannot be built"
                raise BuildFailure(
                    "COMMAND_EXECUTION_ERROR",
                    f"docker build failed ({path} in the application build): {reason}",
                )

    def post_build(self) -> None:
        from moto.ecr.exceptions import ImageAlreadyExistsException
        from moto.ecr.models import ecr_backends

        variables = self.variables
        version, uri = variables["BUILD_VERSION"], variables["IMAGE_REPOSITORY_URI"]
        account, region, _, name = REPOSITORY_URI_PATTERN.match(uri).groups()  # type: ignore[union-attr]
        manifest, digest = _manifest(version, self.artifact)
        if self._repository_images() is None:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"name unknown: The repository with name '{name}' does not exist in the registry"
                f" with id '{account}' (docker push {uri}:{version})",
            )
        try:
            ecr_backends[account][region].put_image(name, manifest, version, MANIFEST_TYPE, digest)
        except ImageAlreadyExistsException as exc:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"tag invalid: The image tag '{version}' already exists in the '{name}'"
                " repository and cannot be overwritten because the repository is immutable.",
            ) from exc
        self.say(f"pushed {uri}:{version} ({digest})")
        self.exported = [
            {"name": "IMAGE_URI", "value": f"{uri}:{version}"},
            {"name": "IMAGE_DIGEST", "value": digest},
        ]

    def _needs(self, phase: str) -> None:
        if self.source_files is not None and SOURCE_FILES[phase] not in self.source_files:
            raise BuildFailure(
                "COMMAND_EXECUTION_ERROR",
                f"{SOURCE_FILES[phase]}: No such file or directory (not in the source bundle)",
            )

    def _repository_images(self) -> set[str] | None:
        """The tags in the build's repository, None when it does not exist."""
        from moto.ecr.models import ecr_backends

        match = REPOSITORY_URI_PATTERN.match(self.variables.get("IMAGE_REPOSITORY_URI", ""))
        if match is None:
            return None
        account, region, _, name = match.groups()
        repository = ecr_backends[account][region].repositories.get(name)
        if repository is None or repository.registry_id != account:
            return None
        return {tag for image in repository.images for tag in image.image_tags}

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> None:
        """The build's phases in order; the first failure ends it FAILED with its reason."""
        steps: list[tuple[str, Callable[[], None]]] = [
            ("PROVISIONING", lambda: None),
            ("DOWNLOAD_SOURCE", self.download_source),
            ("INSTALL", lambda: None),
            ("PRE_BUILD", self.pre_build),
            ("BUILD", self.build),
            ("POST_BUILD", self.post_build),
            ("UPLOAD_ARTIFACTS", lambda: None),
        ]
        phases: list[dict[str, Any]] = []
        failure: BuildFailure | None = None
        for name, step in steps:
            if self.record["buildStatus"] != "IN_PROGRESS":
                return  # stopped meanwhile
            started = _iso_now()
            self.say(f"Entering phase {name}")
            try:
                step()
            except BuildFailure as exc:
                failure = exc
            except Exception as exc:  # the emulator's own fault: the build fails, saying so
                failure = BuildFailure("CLIENT_ERROR", f"local stack: {exc!r}")
            phase: dict[str, Any] = {
                "phaseType": name,
                "phaseStatus": "FAILED" if failure else "SUCCEEDED",
                "startTime": started,
                "endTime": _iso_now(),
                "durationInSeconds": 0,
            }
            if failure is not None:
                phase["contexts"] = [{"statusCode": failure.code, "message": str(failure)}]
                self.say(f"Phase context status code: {failure.code} Message: {failure}")
            self.say(f"Phase complete: {name} State: {phase['phaseStatus']}")
            phases.append(phase)
            if failure is not None:
                break
        now = _iso_now()
        phases += [
            {"phaseType": "FINALIZING", "phaseStatus": "SUCCEEDED", "startTime": now,
             "endTime": now, "durationInSeconds": 0},
            {"phaseType": "COMPLETED", "startTime": now},
        ]  # fmt: skip
        self._ship_log()
        with _builds_lock:
            if self.record["buildStatus"] != "IN_PROGRESS":
                return
            queued = [p for p in self.record["phases"] if p["phaseType"] in ("SUBMITTED", "QUEUED")]
            for phase in queued:
                phase.setdefault("phaseStatus", "SUCCEEDED")
                phase.setdefault("endTime", phases[0]["startTime"])
            self.record["phases"] = [*queued, *phases]
            self.record["currentPhase"] = "COMPLETED"
            self.record["buildStatus"] = "FAILED" if failure else "SUCCEEDED"
            self.record["buildComplete"] = True
            self.record["endTime"] = now
            if self.exported:
                self.record["exportedEnvironmentVariables"] = self.exported

    def _ship_log(self) -> None:
        """The build's log in ``/aws/codebuild/<project>``, its stream the build id's suffix."""
        from moto.logs.models import logs_backends

        logs = logs_backends[self.account_id][self.region]
        group, stream = self.record["logs"]["groupName"], self.record["logs"]["streamName"]
        stamp = int(time.time() * 1000)
        try:
            logs.ensure_log_group(group)
            logs.ensure_log_stream(group, stream)
            logs.put_log_events(
                group, stream, [{"timestamp": stamp, "message": line} for line in self.log]
            )
        except Exception:  # the log is a convenience; the build's outcome is what matters
            log.debug("build %s: its log was not shipped", self.record["id"], exc_info=True)


def _prepare_build(backend: Any, record: dict[str, Any], overrides: list[dict[str, Any]]) -> None:
    """What StartBuild records as CodeBuild does: the project's source and environment, its
    variables with the overrides, its log group and stream; then the build runs."""
    import copy

    project = backend.codebuild_projects[record["projectName"]].project_metadata
    environment = copy.deepcopy(project.get("environment") or {})
    given = {v["name"]: v for v in overrides}
    environment["environmentVariables"] = [
        *(v for v in environment.get("environmentVariables", []) if v["name"] not in given),
        *({"type": "PLAINTEXT", **v} for v in overrides),
    ]
    group = f"/aws/codebuild/{record['projectName']}"
    stream = record["id"].split(":", 1)[1]
    arn_prefix = f"arn:aws:logs:{backend.region_name}:{backend.account_id}:log-group:{group}"
    record.update(
        source=copy.deepcopy(project.get("source") or {}),
        environment=environment,
        timeoutInMinutes=project.get("timeoutInMinutes") or 60,
        logs={
            "groupName": group,
            "streamName": stream,
            "cloudWatchLogsArn": f"{arn_prefix}:log-stream:{stream}",
            "cloudWatchLogs": {"status": "ENABLED"},
        },
    )
    build = SimulatedBuild(backend.account_id, backend.region_name, project, record)
    timer = threading.Timer(BUILD_SECONDS, build.run)
    timer.name, timer.daemon = f"codebuild-{stream[:8]}", True
    timer.start()


def codebuild_build_patches() -> list[Patch]:
    """CODEBUILD_BUILDS: the replacements of moto's CodeBuild build methods.

    * ``CodeBuildResponse.start_build``: the build records the project's source and environment
      with ``environmentVariablesOverride`` (moto drops them), and runs (``SimulatedBuild``).
    * ``CodeBuildBackend.batch_get_builds``: each build as it is (moto reports SUCCEEDED).
    * ``CodeBuildBackend.stop_build``: a running build is STOPPED and stays so."""
    from moto.codebuild.models import CodeBuildBackend
    from moto.codebuild.responses import CodeBuildResponse

    original_start = CodeBuildResponse.start_build

    def start_build(self: Any) -> Any:
        overrides = self._get_param("environmentVariablesOverride") or []
        with _builds_lock:
            result = original_start(self)  # checks the project, records the build
            backend = self.codebuild_backend
            record = backend.build_metadata[self._get_param("projectName")].build_metadata
            _prepare_build(backend, record, overrides)
        return result

    def batch_get_builds(self: Any, ids: list[str]) -> list[dict[str, Any]]:
        import copy

        with _builds_lock:
            return [
                copy.deepcopy(build)
                for builds in self.build_metadata_history.values()
                for build in builds
                if build["id"] in ids
            ]

    def stop_build(self: Any, build_id: str) -> dict[str, Any] | None:
        import copy

        with _builds_lock:
            for builds in self.build_metadata_history.values():
                for build in builds:
                    if build["id"] == build_id:
                        if build["buildStatus"] == "IN_PROGRESS":
                            build.update(
                                buildStatus="STOPPED",
                                currentPhase="COMPLETED",
                                buildComplete=True,
                                endTime=_iso_now(),
                            )
                        stopped: dict[str, Any] = copy.deepcopy(build)
                        return stopped
        return None

    return [
        Patch(CodeBuildResponse, "start_build", start_build),
        Patch(CodeBuildBackend, "batch_get_builds", batch_get_builds),
        Patch(CodeBuildBackend, "stop_build", stop_build),
    ]


CODEBUILD_FROM_CLOUDFORMATION = Gap(
    "CODEBUILD_FROM_CLOUDFORMATION",
    moto_does="moto's CloudFormation has no AWS::CodeBuild::Project: a Fn::GetAtt of one fails"
    " the stack, and without one the stack completes with no project",
    we_do="a project model creates it through CodeBuild's backend (Ref its name, Arn its ARN)",
    install=lambda context: project_model_patches(),
)
CODEBUILD_BUILDS = Gap(
    "CODEBUILD_BUILDS",
    moto_does="StartBuild drops environmentVariablesOverride and records a build with a made-up"
    " source and environment; BatchGetBuilds reports every build SUCCEEDED the first time it is"
    " asked, and nothing is built, pushed or logged",
    we_do="StartBuild records the build IN_PROGRESS with the project's source and environment,"
    " its variables with the overrides and its log stream; BUILD_SECONDS later it runs"
    " container/buildspec.yml's contract phase by phase (source bundle, the build spec's input"
    " checks, the application build unpacked, a FAIL_BUILD file fails it, the image pushed to"
    " the emulated ECR, IMAGE_URI and IMAGE_DIGEST exported); the first failing phase fails the"
    " build with its context; the log goes to CloudWatch Logs; StopBuild stops a running one",
    install=lambda context: codebuild_build_patches(),
)
