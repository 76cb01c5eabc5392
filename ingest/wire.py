"""The wire format: RayEvent JSON exactly as Ray's dashboard aggregator agent POSTs it.

Ray prints protobuf JSON: camelCase names (snake_case when
`RAY_DASHBOARD_AGGREGATOR_AGENT_PRESERVE_PROTO_FIELD_NAME=1`), bytes as standard
base64, int64 as strings, enums as names, timestamps as RFC 3339 strings with
nanoseconds. The same message definitions are built twice, once per naming, so that a
validation error names the field the way the sender spelled it.

Unknown fields are skipped here (newer Ray adds fields); the verbatim body is kept in
the lake's `raw/` area, so nothing is lost.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

# Protobuf int64 / uint64, checked here so that Arrow never meets a number it cannot hold.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
UInt64 = Annotated[int, msgspec.Meta(ge=0)]  # converted by range-checked code

#: RayEvent field that carries each known event type's payload (snake_case name).
PAYLOAD_FIELDS: dict[str, str] = {
    "TASK_DEFINITION_EVENT": "task_definition_event",
    "ACTOR_TASK_DEFINITION_EVENT": "actor_task_definition_event",
    "TASK_LIFECYCLE_EVENT": "task_lifecycle_event",
    "TASK_EXECUTION_EVENT": "task_execution_event",
    "TASK_PROFILE_EVENT": "task_profile_events",
    "ACTOR_DEFINITION_EVENT": "actor_definition_event",
    "ACTOR_LIFECYCLE_EVENT": "actor_lifecycle_event",
    "DRIVER_JOB_DEFINITION_EVENT": "driver_job_definition_event",
    "DRIVER_JOB_LIFECYCLE_EVENT": "driver_job_lifecycle_event",
    "NODE_DEFINITION_EVENT": "node_definition_event",
    "NODE_LIFECYCLE_EVENT": "node_lifecycle_event",
    "WORKER_DEFINITION_EVENT": "worker_definition_event",
    "WORKER_LIFECYCLE_EVENT": "worker_lifecycle_event",
    "PLACEMENT_GROUP_DEFINITION_EVENT": "placement_group_definition_event",
    "PLACEMENT_GROUP_LIFECYCLE_EVENT": "placement_group_lifecycle_event",
    "SUBMISSION_JOB_DEFINITION_EVENT": "submission_job_definition_event",
    "SUBMISSION_JOB_LIFECYCLE_EVENT": "submission_job_lifecycle_event",
    "PLATFORM_EVENT": "platform_event",
}

Naming = Literal["camel", "snake"]


def _define(naming: Naming) -> type[msgspec.Struct]:
    """Build the message classes for one field naming; return the RayEvent class."""
    rename = "camel" if naming == "camel" else None

    # gc=False: decoded events never form cycles, and untracked structs spare the
    # cyclic collector from scanning every event of a large batch.
    class Message(msgspec.Struct, rename=rename, gc=False):
        pass

    class PythonFunctionDescriptor(Message):
        module_name: str = ""
        class_name: str = ""
        function_name: str = ""
        function_hash: str = ""

    class JavaFunctionDescriptor(Message):
        class_name: str = ""
        function_name: str = ""
        signature: str = ""

    class CppFunctionDescriptor(Message):
        function_name: str = ""
        caller: str = ""
        class_name: str = ""

    class FunctionDescriptor(Message):
        python_function_descriptor: PythonFunctionDescriptor | None = None
        java_function_descriptor: JavaFunctionDescriptor | None = None
        cpp_function_descriptor: CppFunctionDescriptor | None = None

    class TaskDefinitionEvent(Message):
        task_id: bytes
        task_attempt: Int64 = 0
        task_type: str = ""
        language: str = ""
        task_func: FunctionDescriptor | None = None
        task_name: str = ""
        required_resources: dict[str, float] = {}
        serialized_runtime_env: str = ""
        job_id: bytes = b""
        parent_task_id: bytes = b""
        placement_group_id: bytes = b""
        label_selector: dict[str, str] = {}
        is_detached_actor: bool = False
        call_site: str | None = None  # proto3 optional: absent means unknown

    class ActorTaskDefinitionEvent(Message):
        task_id: bytes
        task_attempt: Int64 = 0
        language: str = ""
        actor_func: FunctionDescriptor | None = None
        actor_task_name: str = ""
        required_resources: dict[str, float] = {}
        serialized_runtime_env: str = ""
        job_id: bytes = b""
        actor_id: bytes = b""
        parent_task_id: bytes = b""
        placement_group_id: bytes = b""
        label_selector: dict[str, str] = {}
        is_detached_actor: bool = False
        call_site: str | None = None  # proto3 optional: absent means unknown

    class TaskStateTransition(Message):
        state: str
        timestamp: str

    class RayErrorInfo(Message):
        error_type: str = ""
        error_message: str = ""

    class TaskLogInfo(Message):
        # proto3 optional since 2.58: a start and its end arrive in different events.
        stdout_file: str | None = None
        stderr_file: str | None = None
        stdout_start: Int64 | None = None
        stdout_end: Int64 | None = None
        stderr_start: Int64 | None = None
        stderr_end: Int64 | None = None

    class TaskLifecycleEvent(Message):
        task_id: bytes
        task_attempt: Int64 = 0
        state_transitions: list[TaskStateTransition] = []
        ray_error_info: RayErrorInfo | None = None
        task_log_info: TaskLogInfo | None = None
        node_id: bytes = b""
        worker_id: bytes = b""
        worker_pid: Int64 = 0
        job_id: bytes = b""
        is_debugger_paused: bool | None = None
        actor_repr_name: str = ""

    class TaskExecutionEvent(Message):
        """Ray 2.49/2.50: `taskState` maps a TaskStatus number to its time."""

        task_id: bytes
        task_attempt: Int64 = 0
        task_state: dict[Int64, str] = {}
        ray_error_info: RayErrorInfo | None = None
        task_log_info: TaskLogInfo | None = None
        node_id: bytes = b""
        worker_id: bytes = b""
        worker_pid: Int64 = 0
        job_id: bytes = b""

    class ProfileEventEntry(Message):
        event_name: str = ""
        start_time: Int64 = 0
        end_time: Int64 = 0
        extra_data: str = ""

    class ProfileEvents(Message):
        component_type: str = ""
        component_id: bytes = b""
        node_ip_address: str = ""
        events: list[ProfileEventEntry] = []

    class TaskProfileEvents(Message):
        task_id: bytes
        attempt_number: Int64 = 0
        job_id: bytes = b""
        profile_events: ProfileEvents | None = None

    class ActorDefinitionEvent(Message):
        actor_id: bytes
        job_id: bytes = b""
        is_detached: bool = False
        name: str = ""
        ray_namespace: str = ""
        serialized_runtime_env: str = ""
        class_name: str = ""
        required_resources: dict[str, float] = {}
        placement_group_id: bytes = b""
        label_selector: dict[str, str] = {}
        call_site: str = ""
        parent_id: bytes = b""

    class ActorStateTransition(Message):
        state: str
        timestamp: str
        node_id: bytes = b""
        worker_id: bytes = b""
        repr_name: str = ""
        pid: Int64 = 0
        port: Int64 = 0
        restart_reason: str = ""
        # Kept as the JSON Ray sent: several shapes, read by the actors API.
        death_cause: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)

    class ActorLifecycleEvent(Message):
        actor_id: bytes
        state_transitions: list[ActorStateTransition] = []

    class DriverJobConfig(Message):
        serialized_runtime_env: str = ""
        metadata: dict[str, str] = {}

    class DriverJobDefinitionEvent(Message):
        job_id: bytes
        driver_pid: Int64 = 0
        driver_node_id: bytes = b""
        entrypoint: str = ""
        config: DriverJobConfig | None = None

    class JobStateTransition(Message):
        state: str
        timestamp: str

    class DriverJobLifecycleEvent(Message):
        job_id: bytes
        state_transitions: list[JobStateTransition] = []

    class NodeDefinitionEvent(Message):
        node_id: bytes
        node_ip_address: str = ""
        labels: dict[str, str] = {}
        start_timestamp: str = ""
        hostname: str = ""
        node_name: str = ""
        instance_id: str = ""
        instance_type_name: str = ""

    class NodeDeathInfo(Message):
        reason: str = ""
        reason_message: str = ""

    class NodeStateTransition(Message):
        state: str
        timestamp: str
        resources: dict[str, float] = {}
        alive_sub_state: str = ""
        death_info: NodeDeathInfo | None = None

    class NodeLifecycleEvent(Message):
        node_id: bytes
        state_transitions: list[NodeStateTransition] = []

    class WorkerDefinitionEvent(Message):
        worker_id: bytes
        node_id: bytes = b""
        pid: Int64 = 0
        worker_type: str = ""
        job_id: bytes = b""

    class WorkerDeathInfo(Message):
        exit_type: str = ""
        exit_detail: str = ""

    class WorkerStateTransition(Message):
        state: str
        timestamp: str
        worker_launch_time_ms: UInt64 = 0
        worker_launched_time_ms: UInt64 = 0
        start_time_ms: UInt64 = 0
        end_time_ms: UInt64 = 0
        death_info: WorkerDeathInfo | None = None

    class WorkerLifecycleEvent(Message):
        worker_id: bytes
        job_id: bytes = b""
        state_transitions: list[WorkerStateTransition] = []

    class PlacementGroupBundle(Message):
        bundle_index: Int64 = 0
        unit_resources: dict[str, float] = {}
        label_selector: dict[str, str] = {}

    class PlacementGroupDefinitionEvent(Message):
        placement_group_id: bytes
        name: str = ""
        ray_namespace: str = ""
        strategy: str = ""
        is_detached: bool = False
        creator_job_id: bytes = b""
        creator_actor_id: bytes = b""
        bundles: list[PlacementGroupBundle] = []
        soft_target_node_id: bytes = b""
        creation_request_received_ns: Int64 = 0

    class BundlePlacement(Message):
        bundle_index: Int64 = 0
        node_id: bytes = b""

    class PlacementGroupStateTransition(Message):
        state: str
        timestamp: str
        scheduling_state: str = ""
        scheduling_attempt: Int64 = 0
        highest_retry_delay_ms: float = 0.0
        bundle_placements: list[BundlePlacement] = []

    class PlacementGroupLifecycleEvent(Message):
        placement_group_id: bytes
        state_transitions: list[PlacementGroupStateTransition] = []

    class SubmissionJobConfig(Message):
        serialized_runtime_env: str = ""
        metadata: dict[str, str] = {}

    class EntrypointResources(Message):
        num_cpus: float = 0.0
        num_gpus: float = 0.0
        memory: Int64 = 0
        custom_resources: dict[str, float] = {}

    class SubmissionJobDefinitionEvent(Message):
        submission_id: str
        entrypoint: str = ""
        config: SubmissionJobConfig | None = None
        entrypoint_resources: EntrypointResources | None = None

    class SubmissionJobStateTransition(Message):
        state: str
        timestamp: str
        message: str = ""
        error_type: str = ""
        driver_node_id: bytes = b""
        driver_agent_http_address: str = ""
        driver_exit_code: Int64 | None = None

    class SubmissionJobLifecycleEvent(Message):
        submission_id: str
        state_transitions: list[SubmissionJobStateTransition] = []

    class PlatformSource(Message):
        platform: str = ""
        component: str = ""
        metadata: dict[str, str] = {}

    class PlatformEvent(Message):
        source: PlatformSource | None = None
        object_kind: str = ""
        object_name: str = ""
        message: str = ""
        reason: str = ""
        custom_fields: dict[str, str] = {}

    class RayEvent(Message):
        event_id: bytes
        event_type: str
        timestamp: str
        session_name: str = ""
        source_type: str = ""
        severity: str = ""
        message: str = ""
        node_id: bytes = b""
        task_definition_event: TaskDefinitionEvent | None = None
        actor_task_definition_event: ActorTaskDefinitionEvent | None = None
        task_lifecycle_event: TaskLifecycleEvent | None = None
        task_execution_event: TaskExecutionEvent | None = None
        task_profile_events: TaskProfileEvents | None = None
        actor_definition_event: ActorDefinitionEvent | None = None
        actor_lifecycle_event: ActorLifecycleEvent | None = None
        driver_job_definition_event: DriverJobDefinitionEvent | None = None
        driver_job_lifecycle_event: DriverJobLifecycleEvent | None = None
        node_definition_event: NodeDefinitionEvent | None = None
        node_lifecycle_event: NodeLifecycleEvent | None = None
        worker_definition_event: WorkerDefinitionEvent | None = None
        worker_lifecycle_event: WorkerLifecycleEvent | None = None
        placement_group_definition_event: PlacementGroupDefinitionEvent | None = None
        placement_group_lifecycle_event: PlacementGroupLifecycleEvent | None = None
        submission_job_definition_event: SubmissionJobDefinitionEvent | None = None
        submission_job_lifecycle_event: SubmissionJobLifecycleEvent | None = None
        platform_event: PlatformEvent | None = None

    return RayEvent


@dataclass(frozen=True)
class Wire:
    """The RayEvent struct of one field naming, its decoders, and how that naming spells
    a field."""

    naming: Naming
    event: type[msgspec.Struct]
    events: msgspec.json.Decoder[list[Any]]
    raw_events: msgspec.json.Decoder[list[msgspec.Raw]]

    def spell(self, snake_name: str) -> str:
        if self.naming == "snake":
            return snake_name
        head, *rest = snake_name.split("_")
        return head + "".join(part.title() for part in rest)


def _wire(naming: Naming) -> Wire:
    event = _define(naming)
    # strict=False: int64 values arrive as JSON strings ("20573").
    return Wire(
        naming,
        event,
        msgspec.json.Decoder(list[event], strict=False),  # type: ignore[valid-type]
        msgspec.json.Decoder(list[msgspec.Raw]),
    )


CAMEL = _wire("camel")
SNAKE = _wire("snake")


def wire_for(body: bytes) -> Wire:
    """The naming a body uses: snake_case only when Ray was told to keep proto names."""
    if b'"eventId"' not in body and b'"event_id"' in body:
        return SNAKE
    return CAMEL
