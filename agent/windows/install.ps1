<#
.SYNOPSIS
    Install or upgrade the DCV Fleet agent on a Windows desktop host (run as Administrator).
.DESCRIPTION
    Unpacks the archive's dcvfleet_agent package to C:\Program Files\DCVFleet\agent, merges eventBusName and
    region (settingsParameter when -SettingsParameter is given, and dcvCommand: the dcv.exe beside
    the dcvserver service's program, wherever DCV is installed) into C:\ProgramData\DCVFleet\agent.json (other
    keys are kept; readable by SYSTEM and Administrators only), registers the "DCVFleetAgent"
    scheduled task that runs `python -m dcvfleet_agent` as SYSTEM at startup and keeps it running
    (no time limit, restarted when it ends), and starts it. Running it again upgrades.
    The agent's JSON log lines are appended to C:\ProgramData\DCVFleet\agent.log.
.EXAMPLE
    .\install.ps1 -ArchivePath .\dcvfleet-agent.tar.gz -EventBusName dcvfleet -Region us-east-1
.EXAMPLE
    .\install.ps1 -ArchivePath .\dcvfleet-agent.tar.gz -EventBusName dcvfleet -Region us-east-1 -SettingsParameter /dcvfleet/agent-settings
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$ArchivePath,
    [Parameter(Mandatory = $true)][string]$EventBusName,
    [Parameter(Mandatory = $true)][ValidatePattern('^[a-z]{2}(-[a-z]+)+-\d+$')][string]$Region,
    # Python 3.9+, installed for all users; found on PATH when not given.
    [string]$PythonPath = '',
    # Name of the SSM parameter holding the fleet's idle policy (JSON); the key is left as it is when not given.
    [string]$SettingsParameter = ''
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$TaskName = 'DCVFleetAgent'
$InstallDir = Join-Path $env:ProgramFiles 'DCVFleet\agent'
$DataDir = Join-Path $env:ProgramData 'DCVFleet'
$ConfigPath = Join-Path $DataDir 'agent.json'
$LogPath = Join-Path $DataDir 'agent.log'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'install.ps1 must run as Administrator'
}
if (-not (Test-Path -LiteralPath $ArchivePath -PathType Leaf)) {
    throw "archive not found: $ArchivePath"
}
if (-not $PythonPath) {
    $python = Get-Command python.exe -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if (-not $python) {
        throw 'Python 3.9+ is not installed for all users (no python.exe on PATH): the Windows desktop AMI must carry it (docs/host-windows.md)'
    }
    $PythonPath = $python.Source
}
& $PythonPath -c 'import sys; sys.exit(sys.version_info < (3, 9))'
if ($LASTEXITCODE -ne 0) {
    throw "$PythonPath must be Python 3.9 or newer"
}

# 1. Agent code: unpack to a staging folder (tar.exe ships with Windows), then swap.
$parent = Split-Path -Parent $InstallDir
New-Item -ItemType Directory -Force -Path $parent | Out-Null
$staging = Join-Path $parent ('agent.new.' + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $staging | Out-Null
try {
    & tar.exe -xzf (Resolve-Path -LiteralPath $ArchivePath).Path -C $staging dcvfleet_agent
    if ($LASTEXITCODE -ne 0) { throw "tar.exe could not unpack dcvfleet_agent from $ArchivePath" }
    if (-not (Test-Path -LiteralPath (Join-Path $staging 'dcvfleet_agent\__init__.py'))) {
        throw 'archive does not contain dcvfleet_agent\'
    }
    if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
        Stop-ScheduledTask -TaskName $TaskName
    }
    # Replace the package folder, not $InstallDir: a running agent has it as working directory.
    New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
    $package = Join-Path $InstallDir 'dcvfleet_agent'
    if (Test-Path -LiteralPath $package) { Remove-Item -LiteralPath $package -Recurse -Force }
    Move-Item -LiteralPath (Join-Path $staging 'dcvfleet_agent') -Destination $package
}
finally {
    if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force }
}

# 2. Configuration: keep existing keys, set the ones this script owns. UTF-8 without BOM.
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
$config = [ordered]@{}
if (Test-Path -LiteralPath $ConfigPath) {
    $existing = Get-Content -LiteralPath $ConfigPath -Raw | ConvertFrom-Json
    foreach ($property in $existing.PSObject.Properties) { $config[$property.Name] = $property.Value }
}
$config['eventBusName'] = $EventBusName
$config['region'] = $Region
if ($SettingsParameter) {
    $config['settingsParameter'] = $SettingsParameter
}
# dcv.exe is not on SYSTEM's PATH by default (admin guide, "Using the command line tool"), and
# DCV may be installed anywhere: it lies beside the dcvserver service's program.
$dcvService = Get-CimInstance -ClassName Win32_Service -Filter "Name='dcvserver'"
if ($dcvService) {
    $serverExe = $dcvService.PathName -replace '^\s*"?([^"]+?\.exe).*$', '$1'
    $dcvExe = Join-Path (Split-Path -Parent $serverExe) 'dcv.exe'
    if (-not (Test-Path -LiteralPath $dcvExe)) { throw "dcv.exe not found beside the dcvserver service: $dcvExe" }
    $config['dcvCommand'] = $dcvExe
}
elseif (-not $config.Contains('dcvCommand')) {
    throw 'Amazon DCV Server is not installed: no dcvserver service, and agent.json names no dcvCommand'
}
$json = $config | ConvertTo-Json -Depth 5
[IO.File]::WriteAllText($ConfigPath, $json, (New-Object Text.UTF8Encoding $false))
# SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544) only.
& icacls.exe $ConfigPath /inheritance:r /grant:r '*S-1-5-18:(F)' '*S-1-5-32-544:(F)' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls could not restrict $ConfigPath" }

# 3. Scheduled task as SYSTEM; the working directory puts the package on sys.path. The agent runs
# for the life of the host: no execution time limit, restarted on failure, and, because Task
# Scheduler's restart-on-failure does not cover a program that simply exits (exit 1 "not ready",
# a crash), a second trigger starts it again every 5 minutes when it is not running
# (-MultipleInstances IgnoreNew leaves a running agent alone).
$command = '/d /c ""{0}" -m dcvfleet_agent 2>>"{1}""' -f $PythonPath, $LogPath
$action = New-ScheduledTaskAction -Execute 'cmd.exe' -Argument $command -WorkingDirectory $InstallDir
$atStartup = New-ScheduledTaskTrigger -AtStartup
$watchdog = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 5)
$runAs = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -MultipleInstances IgnoreNew `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger @($atStartup, $watchdog) `
    -Principal $runAs -Settings $settings -Force | Out-Null
Start-ScheduledTask -TaskName $TaskName
Write-Output "dcvfleet-agent installed in $InstallDir and started (task $TaskName)"
