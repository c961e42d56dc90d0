/**
 * TypeScript shapes of the csi.v1 messages in csi.proto, as csi/grpc/load.ts
 * decodes them: field names as in the proto (keepCase), int64 as number (see
 * load.ts), enums as their names, every scalar, list and map present with its
 * default, an absent sub-message as null, and a oneof's chosen field named by a
 * virtual field (`access_type: "mount"`); the oneof's other fields are absent
 * when decoded (typed `| null` too, so hand-built requests in tests may say null).
 *
 * Replies are written as `Reply<…>`: any field may be left out and takes its
 * default on the wire.
 */

export type StringMap = Record<string, string>;

/** What a handler returns: the message with every field optional, recursively. */
export type Reply<T> = T extends readonly (infer U)[]
  ? Reply<U>[]
  : T extends object
    ? { [K in keyof T]?: Reply<T[K]> | null }
    : T;

// ---- shared ----

export interface Topology {
  segments: StringMap;
}

export interface CapacityRange {
  required_bytes: number;
  limit_bytes: number;
}

export type AccessMode =
  | "UNKNOWN"
  | "SINGLE_NODE_WRITER"
  | "SINGLE_NODE_READER_ONLY"
  | "MULTI_NODE_READER_ONLY"
  | "MULTI_NODE_SINGLE_WRITER"
  | "MULTI_NODE_MULTI_WRITER"
  | "SINGLE_NODE_SINGLE_WRITER"
  | "SINGLE_NODE_MULTI_WRITER";

export interface VolumeCapability {
  block?: Record<string, never> | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode: { mode: AccessMode } | null;
  access_type?: "block" | "mount";
}

export interface VolumeContentSource {
  snapshot?: { snapshot_id: string } | null;
  volume?: { volume_id: string } | null;
  type?: "snapshot" | "volume";
}

export interface Volume {
  capacity_bytes: number;
  volume_id: string;
  volume_context: StringMap;
  content_source: VolumeContentSource | null;
  accessible_topology: Topology[];
}

export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

export interface Snapshot {
  size_bytes: number;
  snapshot_id: string;
  source_volume_id: string;
  creation_time: { seconds: number; nanos: number } | null;
  ready_to_use: boolean;
  group_snapshot_id: string;
}

// ---- Identity ----

export type GetPluginInfoRequest = Record<string, never>;

export interface GetPluginInfoResponse {
  name: string;
  vendor_version: string;
  manifest: StringMap;
}

export type GetPluginCapabilitiesRequest = Record<string, never>;

export type PluginServiceType =
  | "UNKNOWN"
  | "CONTROLLER_SERVICE"
  | "VOLUME_ACCESSIBILITY_CONSTRAINTS"
  | "GROUP_CONTROLLER_SERVICE"
  | "SNAPSHOT_METADATA_SERVICE";

export interface PluginCapability {
  service?: { type: PluginServiceType } | null;
  volume_expansion?: { type: "UNKNOWN" | "ONLINE" | "OFFLINE" } | null;
  type?: "service" | "volume_expansion";
}

export interface GetPluginCapabilitiesResponse {
  capabilities: PluginCapability[];
}

export type ProbeRequest = Record<string, never>;

export interface ProbeResponse {
  ready: { value: boolean } | null;
}

// ---- Controller ----

export interface TopologyRequirement {
  requisite: Topology[];
  preferred: Topology[];
}

export interface CreateVolumeRequest {
  name: string;
  capacity_range: CapacityRange | null;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  secrets: StringMap;
  volume_content_source: VolumeContentSource | null;
  accessibility_requirements: TopologyRequirement | null;
  mutable_parameters: StringMap;
}

export interface CreateVolumeResponse {
  volume: Volume | null;
}

export interface DeleteVolumeRequest {
  volume_id: string;
  secrets: StringMap;
}

export type DeleteVolumeResponse = Record<string, never>;

export interface ControllerPublishVolumeRequest {
  volume_id: string;
  node_id: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  secrets: StringMap;
  volume_context: StringMap;
}

export interface ControllerPublishVolumeResponse {
  publish_context: StringMap;
}

export interface ControllerUnpublishVolumeRequest {
  volume_id: string;
  node_id: string;
  secrets: StringMap;
}

export type ControllerUnpublishVolumeResponse = Record<string, never>;

export interface ValidateVolumeCapabilitiesRequest {
  volume_id: string;
  volume_context: StringMap;
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  secrets: StringMap;
  mutable_parameters: StringMap;
}

export interface ValidateVolumeCapabilitiesResponse {
  confirmed: {
    volume_context: StringMap;
    volume_capabilities: VolumeCapability[];
    parameters: StringMap;
    mutable_parameters: StringMap;
  } | null;
  message: string;
}

export interface ListVolumesRequest {
  max_entries: number;
  starting_token: string;
}

export interface VolumeStatus {
  published_node_ids: string[];
  volume_condition: VolumeCondition | null;
}

export interface ListVolumesResponse {
  entries: { volume: Volume | null; status: VolumeStatus | null }[];
  next_token: string;
}

export interface ControllerGetVolumeRequest {
  volume_id: string;
}

export interface ControllerGetVolumeResponse {
  volume: Volume | null;
  status: VolumeStatus | null;
}

export interface ControllerModifyVolumeRequest {
  volume_id: string;
  secrets: StringMap;
  mutable_parameters: StringMap;
}

export type ControllerModifyVolumeResponse = Record<string, never>;

export interface GetCapacityRequest {
  volume_capabilities: VolumeCapability[];
  parameters: StringMap;
  accessible_topology: Topology | null;
}

export interface GetCapacityResponse {
  available_capacity: number;
  maximum_volume_size: { value: number } | null;
  minimum_volume_size: { value: number } | null;
}

export type ControllerGetCapabilitiesRequest = Record<string, never>;

export type ControllerRpcType =
  | "UNKNOWN"
  | "CREATE_DELETE_VOLUME"
  | "PUBLISH_UNPUBLISH_VOLUME"
  | "LIST_VOLUMES"
  | "GET_CAPACITY"
  | "CREATE_DELETE_SNAPSHOT"
  | "LIST_SNAPSHOTS"
  | "CLONE_VOLUME"
  | "PUBLISH_READONLY"
  | "EXPAND_VOLUME"
  | "LIST_VOLUMES_PUBLISHED_NODES"
  | "VOLUME_CONDITION"
  | "GET_VOLUME"
  | "SINGLE_NODE_MULTI_WRITER"
  | "MODIFY_VOLUME"
  | "GET_SNAPSHOT";

export interface ControllerGetCapabilitiesResponse {
  capabilities: { rpc?: { type: ControllerRpcType } | null; type?: "rpc" }[];
}

export interface CreateSnapshotRequest {
  source_volume_id: string;
  name: string;
  secrets: StringMap;
  parameters: StringMap;
}

export interface CreateSnapshotResponse {
  snapshot: Snapshot | null;
}

export interface DeleteSnapshotRequest {
  snapshot_id: string;
  secrets: StringMap;
}

export type DeleteSnapshotResponse = Record<string, never>;

export interface ListSnapshotsRequest {
  max_entries: number;
  starting_token: string;
  source_volume_id: string;
  snapshot_id: string;
  secrets: StringMap;
}

export interface ListSnapshotsResponse {
  entries: { snapshot: Snapshot | null }[];
  next_token: string;
}

export interface GetSnapshotRequest {
  snapshot_id: string;
  secrets: StringMap;
}

export interface GetSnapshotResponse {
  snapshot: Snapshot | null;
}

export interface ControllerExpandVolumeRequest {
  volume_id: string;
  capacity_range: CapacityRange | null;
  secrets: StringMap;
  volume_capability: VolumeCapability | null;
}

export interface ControllerExpandVolumeResponse {
  capacity_bytes: number;
  node_expansion_required: boolean;
}

// ---- Node ----

export interface NodeStageVolumeRequest {
  volume_id: string;
  publish_context: StringMap;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
  secrets: StringMap;
  volume_context: StringMap;
}

export type NodeStageVolumeResponse = Record<string, never>;

export interface NodeUnstageVolumeRequest {
  volume_id: string;
  staging_target_path: string;
}

export type NodeUnstageVolumeResponse = Record<string, never>;

export interface NodePublishVolumeRequest {
  volume_id: string;
  publish_context: StringMap;
  staging_target_path: string;
  target_path: string;
  volume_capability: VolumeCapability | null;
  readonly: boolean;
  secrets: StringMap;
  volume_context: StringMap;
}

export type NodePublishVolumeResponse = Record<string, never>;

export interface NodeUnpublishVolumeRequest {
  volume_id: string;
  target_path: string;
}

export type NodeUnpublishVolumeResponse = Record<string, never>;

export interface NodeGetVolumeStatsRequest {
  volume_id: string;
  volume_path: string;
  staging_target_path: string;
}

export interface VolumeUsage {
  available: number;
  total: number;
  used: number;
  unit: "UNKNOWN" | "BYTES" | "INODES";
}

export interface NodeGetVolumeStatsResponse {
  usage: VolumeUsage[];
  volume_condition: VolumeCondition | null;
}

export type NodeGetCapabilitiesRequest = Record<string, never>;

export type NodeRpcType =
  | "UNKNOWN"
  | "STAGE_UNSTAGE_VOLUME"
  | "GET_VOLUME_STATS"
  | "EXPAND_VOLUME"
  | "VOLUME_CONDITION"
  | "SINGLE_NODE_MULTI_WRITER"
  | "VOLUME_MOUNT_GROUP";

export interface NodeGetCapabilitiesResponse {
  capabilities: { rpc?: { type: NodeRpcType } | null; type?: "rpc" }[];
}

export type NodeGetInfoRequest = Record<string, never>;

export interface NodeGetInfoResponse {
  node_id: string;
  max_volumes_per_node: number;
  accessible_topology: Topology | null;
}

export interface NodeExpandVolumeRequest {
  volume_id: string;
  volume_path: string;
  capacity_range: CapacityRange | null;
  staging_target_path: string;
  volume_capability: VolumeCapability | null;
  secrets: StringMap;
}

export interface NodeExpandVolumeResponse {
  capacity_bytes: number;
}

// ---- services: one handler per RPC, request in, reply out ----

/** The call's context a handler may use: cancellation when the client gives up. */
export interface CallContext {
  signal: AbortSignal;
}

export interface IdentityMethods {
  GetPluginInfo: [GetPluginInfoRequest, GetPluginInfoResponse];
  GetPluginCapabilities: [GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse];
  Probe: [ProbeRequest, ProbeResponse];
}

export interface ControllerMethods {
  CreateVolume: [CreateVolumeRequest, CreateVolumeResponse];
  DeleteVolume: [DeleteVolumeRequest, DeleteVolumeResponse];
  ControllerPublishVolume: [ControllerPublishVolumeRequest, ControllerPublishVolumeResponse];
  ControllerUnpublishVolume: [ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse];
  ValidateVolumeCapabilities: [ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse];
  ListVolumes: [ListVolumesRequest, ListVolumesResponse];
  GetCapacity: [GetCapacityRequest, GetCapacityResponse];
  ControllerGetCapabilities: [ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse];
  CreateSnapshot: [CreateSnapshotRequest, CreateSnapshotResponse];
  DeleteSnapshot: [DeleteSnapshotRequest, DeleteSnapshotResponse];
  ListSnapshots: [ListSnapshotsRequest, ListSnapshotsResponse];
  GetSnapshot: [GetSnapshotRequest, GetSnapshotResponse];
  ControllerExpandVolume: [ControllerExpandVolumeRequest, ControllerExpandVolumeResponse];
  ControllerGetVolume: [ControllerGetVolumeRequest, ControllerGetVolumeResponse];
  ControllerModifyVolume: [ControllerModifyVolumeRequest, ControllerModifyVolumeResponse];
}

export interface NodeMethods {
  NodeStageVolume: [NodeStageVolumeRequest, NodeStageVolumeResponse];
  NodeUnstageVolume: [NodeUnstageVolumeRequest, NodeUnstageVolumeResponse];
  NodePublishVolume: [NodePublishVolumeRequest, NodePublishVolumeResponse];
  NodeUnpublishVolume: [NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse];
  NodeGetVolumeStats: [NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse];
  NodeExpandVolume: [NodeExpandVolumeRequest, NodeExpandVolumeResponse];
  NodeGetCapabilities: [NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse];
  NodeGetInfo: [NodeGetInfoRequest, NodeGetInfoResponse];
}

/** Every service's methods, each as [request, response]. */
export interface CsiMethods {
  Identity: IdentityMethods;
  Controller: ControllerMethods;
  Node: NodeMethods;
}

export type Handler<Req, Res> = (request: Req, context: CallContext) => Promise<Reply<Res>>;

/** An implementation of a service: one async handler per method. */
export type ServiceImplementation<M> = {
  [K in keyof M]: M[K] extends [infer Req, infer Res] ? Handler<Req, Res> : never;
};

export type IdentityService = ServiceImplementation<IdentityMethods>;
export type ControllerService = ServiceImplementation<ControllerMethods>;
export type NodeService = ServiceImplementation<NodeMethods>;
