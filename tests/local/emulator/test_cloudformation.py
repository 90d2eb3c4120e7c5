"""CloudFormation's gaps: CFN_LIST_PARAMETERS, CFN_PLACEHOLDERS, CLOUDFRONT, CLOUDWATCH_ALARMS,
APIGW_ACCOUNT, CFN_STACK_LIST_PARAMETERS, CFN_DYNAMIC_REFERENCES."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
import zipfile
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from moto import mock_aws

from local import deploy
from local.emulator.cloudformation import (
    API_CREATED_TYPES,
    fix_template_for_emulator,
    resolve_ssm_references,
    stack_parameter_patches,
)
from tests.support.emulator import (
    ACCOUNT,
    REGION,
    ROLE_ARN,
    SWAGGER_BODY,
    aws_client,
    create_probe_function,
    create_role,
    create_stack,
    resource_paths,
    ssm_value,
    stack_resources,
)


# ==============================================================================================
# CFN_LIST_PARAMETERS
def _list_template(types_default: str) -> dict[str, Any]:
    return {
        "Parameters": {
            "InstanceTypes": {"Type": "CommaDelimitedList", "Default": types_default},
            "SubnetIds": {"Type": "List<AWS::EC2::Subnet::Id>"},
        },
        "Resources": {
            "JoinedTypes": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "joined-types",
                    "Type": "String",
                    "Value": {"Fn::Join": [",", {"Ref": "InstanceTypes"}]},
                },
            },
            "JoinedSubnets": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "joined-subnets",
                    "Type": "String",
                    "Value": {"Fn::Join": [",", {"Ref": "SubnetIds"}]},
                },
            },
            "QuotedTypes": {  # a JSON list of them, as the agent settings parameter is built
                "Type": "AWS::SSM::Parameter",
                "Properties": {
                    "Name": "quoted-types",
                    "Type": "String",
                    "Value": {
                        "Fn::Sub": [
                            '["${Types}"]',
                            {"Types": {"Fn::Join": ['", "', {"Ref": "InstanceTypes"}]}},
                        ]
                    },
                },
            },
        },
    }


SUBNETS = [{"ParameterKey": "SubnetIds", "ParameterValue": "subnet-1,subnet-2"}]


#: A list-valued property given ``Ref`` to a list parameter, as a compute environment's
#: ``InstanceTypes`` is: a rule's event pattern shows what moto made of it.
LIST_RULE: dict[str, Any] = {
    "Type": "AWS::Events::Rule",
    "Properties": {"Name": "types", "EventPattern": {"detail-type": {"Ref": "InstanceTypes"}}},
}


def test_gap_cfn_list_parameters() -> None:
    """GAP CFN_LIST_PARAMETERS: ``Fn::Join`` over a ``CommaDelimitedList`` parameter left at
    its default joins the characters of the raw string, ``Ref`` to a ``List<...>`` parameter
    is a stringified Python list, and ``Ref`` to a ``CommaDelimitedList`` left at its default,
    given to a list-valued property, is its raw string (a compute environment then has the
    instance types "g", "5", ...; a rule's pattern is refused). When this fails, moto has
    changed: drop the list part of ``fix_template_for_emulator`` in local/emulator/cloudformation.py."""
    template = _list_template("g5.xlarge,g6.xlarge")
    template["Resources"]["RefSubnets"] = {
        "Type": "AWS::SSM::Parameter",
        "Properties": {"Name": "ref-subnets", "Type": "String", "Value": {"Ref": "SubnetIds"}},
    }
    with mock_aws():
        create_stack("probe", template, Parameters=SUBNETS)
        assert ssm_value("joined-types") == "g,5,.,x,l,a,r,g,e,,,g,6,.,x,l,a,r,g,e"
        assert ssm_value("quoted-types").startswith('["g", "5", ".", "x"')
        assert ssm_value("ref-subnets") == "['subnet-1', 'subnet-2']"
    template = _list_template("g5.xlarge,g6.xlarge")
    template["Resources"]["Types"] = LIST_RULE
    with (
        mock_aws(),
        pytest.raises(ResponseParserError, match=r"detail-type\W+ must be an object or an array"),
    ):
        create_stack("probe", template, Parameters=SUBNETS)


def test_workaround_cfn_list_parameters() -> None:
    """``fix_template_for_emulator`` replaces ``Fn::Join [<separator>, Ref <list>]`` by the
    parameter's members (trimmed, as AWS does) joined by the separator, and any other ``Ref``
    to a list parameter by its members."""
    template = _list_template("g5.xlarge, g6.xlarge")
    template["Resources"]["Types"] = LIST_RULE
    fix_template_for_emulator(template, {"SubnetIds": "subnet-1,subnet-2"})
    resources = template["Resources"]
    assert resources["JoinedTypes"]["Properties"]["Value"] == "g5.xlarge,g6.xlarge"
    assert resources["JoinedSubnets"]["Properties"]["Value"] == "subnet-1,subnet-2"
    with mock_aws():
        create_stack("probe", template, Parameters=SUBNETS)
        assert ssm_value("joined-types") == "g5.xlarge,g6.xlarge"
        assert ssm_value("joined-subnets") == "subnet-1,subnet-2"
        assert json.loads(ssm_value("quoted-types")) == ["g5.xlarge", "g6.xlarge"]
        pattern = aws_client("events").describe_rule(Name="types")["EventPattern"]
        assert json.loads(pattern) == {"detail-type": ["g5.xlarge", "g6.xlarge"]}


# ==============================================================================================
# CFN_PLACEHOLDERS
COGNITO_TEMPLATE: dict[str, Any] = {
    "Resources": {
        "UserPool": {
            "Type": "AWS::Cognito::UserPool",
            "Properties": {
                "UserPoolName": "fleet",
                "Schema": [{"Name": "email", "AttributeDataType": "String", "Required": True}],
            },
        },
        "UserPoolClient": {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {"UserPoolId": {"Ref": "UserPool"}, "ClientName": "portal"},
        },
        "AdminsGroup": {
            "Type": "AWS::Cognito::UserPoolGroup",
            "Properties": {"UserPoolId": {"Ref": "UserPool"}, "GroupName": "admins"},
        },
    },
    "Outputs": {"UserPoolId": {"Value": {"Ref": "UserPool"}}},
}


@pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning")
def test_gap_cfn_placeholders_cognito() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation "creates" Cognito resources as placeholders: the
    stack completes, but no user pool exists, the resources have no ids and outputs referring
    to them are dropped. When this fails, moto has changed: drop the Cognito types from
    ``API_CREATED_TYPES`` in local/emulator/cloudformation.py."""
    with mock_aws():
        stack = create_stack("probe", COGNITO_TEMPLATE)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        assert "Outputs" not in stack
        resources = stack_resources("probe")
        assert len(resources) == 3
        assert all("PhysicalResourceId" not in r for r in resources)
        assert aws_client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"] == []


def test_workaround_cfn_placeholders_cognito(moto_server: str) -> None:
    """The Cognito types are created through the API (``Deployer._create_cognito``)."""
    assert {
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolGroup",
    } <= API_CREATED_TYPES
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, COGNITO_TEMPLATE)
    deploy.Deployer(moto_server, REGION)._create_cognito(COGNITO_TEMPLATE["Resources"], deployment)
    pool_id = deployment.physical["UserPool"]
    idp = aws_client("cognito-idp", moto_server)
    assert idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Name"] == "fleet"
    client = idp.describe_user_pool_client(
        UserPoolId=pool_id, ClientId=deployment.physical["UserPoolClient"]
    )
    assert client["UserPoolClient"]["ClientName"] == "portal"
    group = idp.get_group(UserPoolId=pool_id, GroupName=deployment.physical["AdminsGroup"])
    assert group["Group"]["GroupName"] == "admins"
    assert deployment.attributes[("UserPool", "Arn")].endswith(f"userpool/{pool_id}")


def test_gap_cfn_placeholders_rest_api_body_ignored() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation ignores an ``AWS::ApiGateway::RestApi``'s ``Body``,
    so the API has no methods and an ``AWS::ApiGateway::Deployment`` of it fails. When this
    fails, moto has changed: drop ``AWS::ApiGateway::Deployment`` (and ``Stage``) from
    ``API_CREATED_TYPES`` in local/emulator/cloudformation.py."""
    api = {
        "Type": "AWS::ApiGateway::RestApi",
        "Properties": {"Name": "fleet", "Body": SWAGGER_BODY},
    }
    deployed = {
        "Resources": {
            "Api": api,
            "Deployment": {
                "Type": "AWS::ApiGateway::Deployment",
                "Properties": {"RestApiId": {"Ref": "Api"}},
            },
        }
    }
    with mock_aws():
        create_stack("api", {"Resources": {"Api": api}})
        (resource,) = stack_resources("api")
        assert resource_paths(aws_client("apigateway"), resource["PhysicalResourceId"]) == {"/": []}
        # In-process the error reaches the client as an unparsable (JSON, not XML) response.
        with pytest.raises((ClientError, ResponseParserError), match="contain any methods"):
            create_stack("deployed", deployed)


def test_gap_cfn_placeholders_put_rest_api_swagger() -> None:
    """GAP CFN_PLACEHOLDERS: ``put_rest_api`` imports only OpenAPI 3, while aws-sam-translator
    writes Swagger 2.0, so the body cannot be imported through the API either. When this fails,
    moto has changed: the body could be imported instead of served by ``local.apigw``."""
    openapi3 = {"openapi": "3.0.1", "info": SWAGGER_BODY["info"], "paths": SWAGGER_BODY["paths"]}
    with mock_aws():
        apigateway = aws_client("apigateway")
        swagger_api = apigateway.create_rest_api(name="swagger")["id"]
        with pytest.raises(ClientError) as err:
            apigateway.put_rest_api(
                restApiId=swagger_api, mode="overwrite", body=json.dumps(SWAGGER_BODY).encode()
            )
        assert err.value.response["Error"]["Code"] == "BadRequestException"
        assert err.value.response["Error"]["Message"] == (
            "Only OpenAPI 3.x.x are currently supported"
        )
        assert resource_paths(apigateway, swagger_api) == {"/": []}

        # The same paths as OpenAPI 3 are imported.
        openapi_api = apigateway.create_rest_api(name="openapi3")["id"]
        apigateway.put_rest_api(
            restApiId=openapi_api, mode="overwrite", body=json.dumps(openapi3).encode()
        )
        assert resource_paths(apigateway, openapi_api) == {"/": [], "/sessions": ["GET"]}


def test_workaround_cfn_placeholders_api_served_locally() -> None:
    """The Deployment and Stage are left out of the stack; ``Deployer._deploy_apis`` keeps the
    RestApi's resolved body and stage for the local API server, and says so."""
    assert {"AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"} <= (API_CREATED_TYPES)
    body = json.loads(json.dumps(SWAGGER_BODY))
    body["paths"]["/sessions"]["get"]["x-amazon-apigateway-integration"]["uri"] = {
        "Fn::Sub": (
            "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${Fn.Arn}/invocations"
        )
    }
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": body}},
            "ApiStage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "v1"},
            },
        }
    }
    deployment = deploy.Deployment(
        REGION, ACCOUNT, {}, template, physical={"Fn": "fleet-fn", "Api": "abc123"}
    )
    api_created = {"ApiStage": template["Resources"]["ApiStage"]}
    # No call reaches the emulator: the body is resolved from the deployment alone.
    deploy.Deployer("http://127.0.0.1:9", REGION)._deploy_apis(api_created, template, deployment)
    assert deployment.apis == {"Api": {"stage": "v1", "body": SWAGGER_BODY, "methodSettings": []}}
    assert deployment.not_emulated == [
        "ApiStage (AWS::ApiGateway::Stage): served by the local API server"
    ]


def test_gap_cfn_placeholders_rest_api_needs_name() -> None:
    """GAP CFN_PLACEHOLDERS: an ``AWS::ApiGateway::RestApi`` without ``Name`` (SAM writes none
    next to a ``Body``; AWS takes the body's title) fails to create. When this fails, moto has
    changed: drop the ``Name`` default in ``fix_template_for_emulator`` in local/emulator/cloudformation.py."""
    template = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": SWAGGER_BODY}}
        }
    }
    with mock_aws(), pytest.raises(KeyError, match="Name"):
        create_stack("api", template)


def test_workaround_cfn_placeholders_rest_api_name() -> None:
    """``fix_template_for_emulator`` names a nameless RestApi after its logical id."""
    template: dict[str, Any] = {
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": SWAGGER_BODY}},
            "Named": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "mine"}},
        }
    }
    fix_template_for_emulator(template, {})
    assert template["Resources"]["Api"]["Properties"]["Name"] == "Api"
    assert template["Resources"]["Named"]["Properties"]["Name"] == "mine"
    with mock_aws():
        assert create_stack("api", template)["StackStatus"] == "CREATE_COMPLETE"
        apis = aws_client("apigateway").get_rest_apis()["items"]
        assert sorted(a["name"] for a in apis) == ["Api", "mine"]


PERMISSION_SOURCE_ARN = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:abc123/*/GET/sessions"


PERMISSION: dict[str, Any] = {
    "Type": "AWS::Lambda::Permission",
    "Properties": {
        "FunctionName": {"Ref": "Fn"},
        "Action": "lambda:InvokeFunction",
        "Principal": "apigateway.amazonaws.com",
        "SourceArn": PERMISSION_SOURCE_ARN,
    },
}


def test_gap_cfn_placeholders_lambda_permission_has_no_id() -> None:
    """GAP CFN_PLACEHOLDERS: CloudFormation does add an ``AWS::Lambda::Permission``'s statement
    to the function's policy, but gives the resource no physical id, which ``local.deploy``
    requires of every resource ("not emulated"). When this fails, moto has changed: drop
    ``AWS::Lambda::Permission`` from ``API_CREATED_TYPES`` in local/emulator/cloudformation.py."""
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "fleet-fn",
                    "Runtime": "python3.12",
                    "Handler": "probe.handler",
                    "Role": ROLE_ARN,
                    "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
                },
            },
            "Permission": PERMISSION,
        }
    }
    with mock_aws():
        create_role()
        assert create_stack("probe", template)["StackStatus"] == "CREATE_COMPLETE"
        resources = {r["LogicalResourceId"]: r for r in stack_resources("probe")}
        assert resources["Permission"]["ResourceStatus"] == "CREATE_COMPLETE"
        assert "PhysicalResourceId" not in resources["Permission"]
        policy = aws_client("lambda").get_policy(FunctionName="fleet-fn")["Policy"]
        (statement,) = json.loads(policy)["Statement"]
        assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
        assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": PERMISSION_SOURCE_ARN}}


def test_workaround_cfn_placeholders_lambda_permission(moto_server: str) -> None:
    """Lambda permissions are added through the API (``Deployer._add_permissions``), the
    logical id their statement id and physical id."""
    assert "AWS::Lambda::Permission" in API_CREATED_TYPES
    create_probe_function("fleet-fn", moto_server)
    template = {"Resources": {"Permission": PERMISSION}}
    deployment = deploy.Deployment(REGION, ACCOUNT, {}, template, physical={"Fn": "fleet-fn"})
    deploy.Deployer(moto_server, REGION)._add_permissions(template["Resources"], deployment)
    assert deployment.physical["Permission"] == "Permission"
    policy = aws_client("lambda", moto_server).get_policy(FunctionName="fleet-fn")["Policy"]
    (statement,) = json.loads(policy)["Statement"]
    assert statement["Sid"] == "Permission"
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": PERMISSION_SOURCE_ARN}}


@mock_aws
@pytest.mark.parametrize(
    ("resource_type", "properties"),
    [
        (
            "AWS::CloudFront::OriginAccessControl",
            {
                "OriginAccessControlConfig": {
                    "Name": "portal",
                    "OriginAccessControlOriginType": "s3",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        ),
        (
            "AWS::CloudFront::ResponseHeadersPolicy",
            {"ResponseHeadersPolicyConfig": {"Name": "portal-headers"}},
        ),
        ("AWS::Lambda::LayerVersion", {"Content": {"S3Bucket": "layers", "S3Key": "k.zip"}}),
    ],
)
def test_gap_cloudfront_and_layers_not_in_cloudformation(
    resource_type: str, properties: dict[str, Any]
) -> None:
    """GAP CLOUDFRONT (and the layer and bucket policy entries of API_CREATED_TYPES): moto's
    CloudFormation makes nothing of a CloudFront resource or a layer version: the stack
    completes and the resource has no physical id. When this fails, moto has changed: drop
    the type from ``LOCALLY_SERVED_TYPES`` / ``API_CREATED_TYPES`` in local/emulator/cloudformation.py."""
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="layers")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("index.html", "<!doctype html>")
    s3.put_object(Bucket="layers", Key="k.zip", Body=archive.getvalue())
    template = {"Resources": {"Probe": {"Type": resource_type, "Properties": properties}}}
    create_stack("probe", template)
    resources = {r.get("LogicalResourceId"): r for r in stack_resources("probe")}
    assert "PhysicalResourceId" not in resources.get("Probe", {})


@mock_aws
def test_gap_bucket_policy_not_in_cloudformation() -> None:
    """GAP (API_CREATED_TYPES): a bucket policy from CloudFormation is skipped (moto warns), so
    the bucket has none. When this fails, drop AWS::S3::BucketPolicy from API_CREATED_TYPES."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:DeleteBucket",
                "Resource": "arn:aws:s3:::probe-portal",
            }
        ],
    }
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "probe-portal"}},
            "Policy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {"Bucket": {"Ref": "Bucket"}, "PolicyDocument": policy},
            },
        }
    }
    with pytest.warns(UserWarning, match="BucketPolicy"):
        create_stack("probe", template)
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        aws_client("s3").get_bucket_policy(Bucket="probe-portal")


ALARM_PROPERTIES = {
    "Namespace": "AWS/SQS",
    "MetricName": "ApproximateNumberOfMessagesVisible",
    "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
    "Statistic": "Maximum",
    "Period": 300,
    "EvaluationPeriods": 1,
    "Threshold": 1,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
}


@mock_aws
def test_gap_cloudwatch_alarms_not_in_cloudformation() -> None:
    """GAP CLOUDWATCH_ALARMS: moto's CloudFormation makes no alarm of an AWS::CloudWatch::Alarm.
    When this fails, moto has changed: drop
    the alarm and dashboard entries of API_CREATED_TYPES in local/emulator/cloudformation.py."""
    template = {
        "Resources": {"Probe": {"Type": "AWS::CloudWatch::Alarm", "Properties": ALARM_PROPERTIES}}
    }
    with contextlib.suppress(ClientError):
        create_stack("probe", template)
    assert aws_client("cloudwatch").describe_alarms()["MetricAlarms"] == []


@mock_aws
def test_gap_apigateway_account_not_in_cloudformation() -> None:
    """GAP APIGW_ACCOUNT: moto's CloudFormation does not set the account's CloudWatch role from an
    AWS::ApiGateway::Account. When this fails, moto has changed: drop the AWS::ApiGateway::Account
    entry of API_CREATED_TYPES in local/emulator/cloudformation.py and ``_set_api_gateway_account`` in
    local/deploy.py."""
    role = "arn:aws:iam::123456789012:role/apigateway-logs"
    template = {
        "Resources": {
            "Probe": {"Type": "AWS::ApiGateway::Account", "Properties": {"CloudWatchRoleArn": role}}
        }
    }
    with warnings.catch_warnings(), contextlib.suppress(ClientError):
        warnings.simplefilter("ignore")
        create_stack("probe", template)
    assert aws_client("apigateway").get_account().get("cloudwatchRoleArn") != role


# ==============================================================================================
# CFN_STACK_LIST_PARAMETERS
LIST_PARAMETER_TEMPLATE: dict[str, Any] = {
    "Parameters": {"Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"}},
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
}


def _list_parameter_value() -> str:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="lists",
        TemplateBody=json.dumps(LIST_PARAMETER_TEMPLATE),
        Parameters=[{"ParameterKey": "Subnets", "ParameterValue": "subnet-a,subnet-b"}],
    )
    (stack,) = cfn.describe_stacks(StackName="lists")["Stacks"]
    return str(stack["Parameters"][0]["ParameterValue"])


def test_gap_cfn_stack_list_parameters() -> None:
    """GAP CFN_STACK_LIST_PARAMETERS: DescribeStacks gives a list parameter as a Python repr."""

    with mock_aws():
        assert _list_parameter_value() == "['subnet-a', 'subnet-b']"


def test_workaround_cfn_stack_list_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    for owner, attribute, replacement in stack_parameter_patches():
        monkeypatch.setattr(owner, attribute, replacement)
    with mock_aws():
        assert _list_parameter_value() == "subnet-a,subnet-b"


# ==============================================================================================
# CFN_DYNAMIC_REFERENCES
DYNAMIC_REFERENCE_TEMPLATE: dict[str, Any] = {
    "Parameters": {"Source": {"Type": "String", "Default": "/probe/image"}},
    "Resources": {
        "Copy": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/probe/copy",
                "Type": "String",
                "Value": {"Fn::Sub": "{{resolve:ssm:${Source}}}"},
            },
        }
    },
}


def _copied_by_dynamic_reference(resolve: bool, source: str = "/probe/image") -> str:
    ssm = aws_client("ssm")
    ssm.put_parameter(Name="/probe/image", Value="ami-0123456789abcdef0", Type="String")
    template = json.loads(json.dumps(DYNAMIC_REFERENCE_TEMPLATE))
    if resolve:
        resolve_ssm_references(template, {"Source": source}, ACCOUNT, REGION)
    create_stack("dynref", template)
    return str(ssm.get_parameter(Name="/probe/copy")["Parameter"]["Value"])


def test_gap_cfn_dynamic_references() -> None:
    """GAP CFN_DYNAMIC_REFERENCES: moto's CloudFormation leaves ``{{resolve:ssm:...}}`` as
    written; AWS puts the parameter's value there. When this fails, moto has changed: drop
    ``resolve_ssm_references`` in local/emulator/cloudformation.py."""
    with mock_aws():
        assert _copied_by_dynamic_reference(resolve=False) == "{{resolve:ssm:/probe/image}}"


def test_workaround_cfn_dynamic_references() -> None:
    """``resolve_ssm_references`` puts the parameter's value in, and a reference to a parameter
    that does not exist fails the deploy, as CloudFormation fails the stack."""
    with mock_aws():
        assert _copied_by_dynamic_reference(resolve=True) == "ami-0123456789abcdef0"
    with mock_aws(), pytest.raises(ValueError, match="no SSM parameter /probe/missing"):
        _copied_by_dynamic_reference(resolve=True, source="/probe/missing")


@mock_aws
def test_gap_custom_resources_run_inside_create_stack() -> None:
    """GAP CUSTOM_RESOURCES: moto's CloudFormation invokes a Lambda-backed custom resource's
    function within CreateStack itself (here it cannot find it, and CreateStack fails; on AWS
    the resource would fail, the stack roll back). When this fails, moto has changed: see
    whether Custom::DesktopProfiles can stay in the emulated stack."""
    service_token = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:nothing-here"
    template = {
        "Resources": {
            "Check": {
                "Type": "Custom::DesktopProfiles",
                "Properties": {"ServiceToken": service_token, "Profiles": "[]"},
            }
        }
    }
    with pytest.raises(Exception, match="Function not found"):
        create_stack("probe", template)
