"""The registry's data: one DynamoDB table per entry of `registry.storage.schema.TABLES`, the
bucket that holds layer blobs, large manifests and staged upload parts, and the KMS key that
encrypts the secrets of the registry's access keys.

Construct ids are the logical table names: renaming one replaces the table (and loses its data), so
don't. A table added to TABLES appears here and in the function's environment on the next deploy;
the synth fails until infra/api.py TABLE_ACCESS says what the function may do to it.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from registry.storage import access_keys
from registry.storage.schema import STAGED_PARTS_PREFIX, TABLES

from .config import RegistryProps

STAGED_PARTS_DAYS = 7  # same as the uploads table's TTL (Settings.upload_ttl_seconds)
INCOMPLETE_MULTIPART_DAYS = 7
ACCESS_LOG_DAYS = 90
KEYS_KEY_DESCRIPTION = "Encrypts the secrets of the registry's access keys"
TOKEN_KEY_DESCRIPTION = "Derives the key that signs the registry's tokens"
# The encryption context under which registryctl encrypts a key's secret and the function decrypts
# it (lambdas/registry/storage/access_keys.py): every use of the key requires exactly these keys.
SECRET_CONTEXT_KEYS = access_keys.SECRET_CONTEXT_KEYS
# What key administrators may do (AWS's default key policy for key administrators): manage the key,
# its policy, grants, rotation and deletion; no cryptographic operation.
KEY_ADMINISTRATION_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
]


def secret_context_condition() -> dict:
    """Only ciphertexts bound to an access key: both context keys storage/keys.py writes, no other."""
    return {
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": list(SECRET_CONTEXT_KEYS)},
        "Null": {f"kms:EncryptionContext:{key}": "false" for key in SECRET_CONTEXT_KEYS},
    }


def _construct_id(logical: str) -> str:
    return "".join(part.capitalize() for part in logical.split("_")) + "Table"


class RegistryStorage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: RegistryProps) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.DESTROY if props.destroy else RemovalPolicy.RETAIN

        self.tables: dict[str, dynamodb.Table] = {}
        for logical, spec in TABLES.items():
            self.tables[logical] = dynamodb.Table(
                self,
                _construct_id(logical),
                partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=(
                    dynamodb.Attribute(name=spec.sort_key, type=dynamodb.AttributeType.STRING)
                    if spec.sort_key
                    else None
                ),
                time_to_live_attribute=spec.ttl_attribute,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                # AWS-managed key (aws/dynamodb): encryption visible in the template and in CloudTrail,
                # no key to administer. A customer key would add a per-key monthly cost.
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                deletion_protection=not props.destroy,
                removal_policy=removal,
            )

        # The secrets of access keys (keys table, `secret_ciphertext`): registryctl encrypts with the
        # operator's credentials, the function may only decrypt (infra/api.py adds its statement to
        # this key policy). A customer key, not aws/dynamodb: its use is granted per principal,
        # rotates yearly, and shows in CloudTrail per key. RETAINed like the tables: without it the
        # keys table's secrets are unreadable.
        self.keys_key = kms.Key(
            self,
            "AccessKeySecrets",
            description=KEYS_KEY_DESCRIPTION,
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=Duration.days(7) if props.destroy else None,  # the shortest KMS allows
            policy=_keys_key_policy(props.operator_principal_arns),
        )

        # The registry's token key (page tokens, later the passwords of GetAuthorizationToken): an HMAC
        # key that never leaves KMS; the function derives its signing key from it once per cold start
        # (lambdas/registry/storage/signing.py). HMAC keys have no automatic rotation in KMS; a new key
        # (a deploy replacing this one) only invalidates tokens in flight, which clients ask for again.
        self.token_key = kms.Key(
            self,
            "TokenKey",
            description=TOKEN_KEY_DESCRIPTION,
            key_spec=kms.KeySpec.HMAC_256,
            key_usage=kms.KeyUsage.GENERATE_VERIFY_MAC,
            removal_policy=RemovalPolicy.DESTROY,  # nothing stored depends on it
            pending_window=Duration.days(7),
        )

        # Server access logs of the blob bucket: presigned GETs go from clients straight to S3, so
        # this is the only record of layer downloads. SSE-S3 is what log delivery supports.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_DAYS)),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            removal_policy=removal,
        )

        # Versioning stays off: every blob and manifest key is content-addressed (written once, never
        # overwritten), so versions would only keep bytes alive after a deliberate delete
        # (BatchDeleteImage, lifecycle), with no way for the registry to reach them. Recovery of the
        # metadata is DynamoDB PITR's job.
        self.bucket = s3.Bucket(
            self,
            "Blobs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # objects of KMS repositories carry SSE-KMS
            enforce_ssl=True,
            versioned=False,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="blobs-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart",
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_MULTIPART_DAYS),
                ),
                s3.LifecycleRule(
                    id="expire-staged-parts", prefix=STAGED_PARTS_PREFIX, expiration=Duration.days(STAGED_PARTS_DAYS)
                ),
            ],
            removal_policy=removal,
        )


def _keys_key_policy(operators: tuple[str, ...]) -> iam.PolicyDocument:
    """Who may do what with the access keys' KMS key.

    The account root always stays in the policy: a key policy that names no principal able to
    change it locks everyone out for good (only AWS Support can recover such a key). Without
    registry:operatorPrincipalArns the root may do everything (AWS's default key policy): any
    principal of the account whose IAM policy allows it may encrypt secrets, i.e. issue keys with
    registryctl. With it, the root only administers the key, and the operators named are the only
    ones who may encrypt (issue keys) and decrypt, and only under the access keys' encryption
    context; ordinary IAM policies (even kms:* on *) no longer confer any use of the key. The account's
    administrators can still give themselves use (PutKeyPolicy, CreateGrant): that is what keeps the
    key manageable, and it shows in CloudTrail.
    """
    root = iam.AccountRootPrincipal()
    if not operators:
        return iam.PolicyDocument(
            statements=[
                iam.PolicyStatement(
                    sid="AccountUsesAndAdministersKey", principals=[root], actions=["kms:*"], resources=["*"]
                )
            ]
        )
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="AccountAdministersKey", principals=[root], actions=KEY_ADMINISTRATION_ACTIONS, resources=["*"]
            ),
            iam.PolicyStatement(
                sid="OperatorsEncryptSecrets",
                principals=[iam.ArnPrincipal(arn) for arn in operators],
                actions=["kms:Encrypt", "kms:Decrypt"],
                resources=["*"],
                conditions=secret_context_condition(),
            ),
        ]
    )
