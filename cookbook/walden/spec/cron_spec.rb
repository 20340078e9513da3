# frozen_string_literal: true

RSpec.describe Walden::Cron do
  describe '.schedule' do
    {
      { 'minute' => '30', 'hour' => '2', 'day' => '*', 'month' => '*', 'weekday' => '1' } => '30 2 * * 1',
      { 'minute' => 15, 'hour' => 4 } => '15 4 * * *',
      { 'weekday' => 'mon' } => '0 0 * * 1',
      { 'weekday' => :saturday } => '0 0 * * 6',
      { 'weekday' => 'Mon-Fri' } => '0 0 * * 1-5',
      { 'weekday' => '7' } => '0 0 * * 0',
      { 'weekday' => '5-7' } => '0 0 * * 5-6,0',
      { 'weekday' => '0,3' } => '0 0 * * 0,3',
      { 'month' => 'jan,jul', 'day' => '1' } => '0 0 1 1,7 *',
      { 'minute' => '*/15', 'hour' => '1-5' } => '*/15 1-5 * * *',
      { 'minute' => '', 'hour' => nil } => '0 0 * * *',
      { 'time' => :daily } => '0 0 * * *',
      { 'time' => '@weekly', 'hour' => '3' } => '0 0 * * 0'
    }.each do |fields, schedule|
      it "maps #{fields.inspect} to #{schedule.inspect}" do
        expect(described_class.schedule(fields)).to eq(schedule)
      end
    end

    it 'defaults left-out minute and hour to 0, never every minute' do
      expect(described_class.schedule({})).to eq('0 0 * * *')
      expect(described_class.schedule('day' => '1')).to eq('0 0 1 * *')
    end

    [
      { 'minute' => '60' }, { 'hour' => '24' }, { 'day' => '0' }, { 'month' => '13' }, { 'weekday' => '8' },
      { 'weekday' => 'funday' }, { 'weekday' => 'mo' }, { 'hour' => '5-1' }, { 'minute' => '*/0' },
      { 'minute' => '1,,2' }, { 'time' => :reboot }
    ].each do |fields|
      it "refuses #{fields.inspect}" do
        expect { described_class.schedule(fields) }.to raise_error(Walden::ConfigError)
      end
    end
  end

  describe '.fields' do
    it 'splits a schedule back into cron fields' do
      expect(described_class.fields('30 2 * * 1')).to eq('minute' => '30', 'hour' => '2', 'day' => '*',
                                                         'month' => '*', 'weekday' => '1')
    end

    it 'expands @ words' do
      expect(described_class.fields('@daily')).to eq(described_class.fields('0 0 * * *'))
    end

    it 'refuses what is not five valid fields' do
      expect { described_class.fields('0 0 * *') }.to raise_error(Walden::ConfigError)
      expect { described_class.fields('0 25 * * *') }.to raise_error(Walden::ConfigError)
    end
  end
end

RSpec.describe Walden::Crontab do
  let(:crontab) do
    <<~CRON
      # Chef Name: something else
      5 5 * * * /bin/true
      # Chef Name: full wal-e backup
      MAILTO=dba@example.org
      PATH=/usr/bin:/bin
      AWS_REGION=eu-west-1
      0 1 * * 0 /opt/wal-e/bin/backup.sh >> /var/log/wal-e.log 2>&1
    CRON
  end

  it 'finds the entry under its Chef name with its environment' do
    e = described_class.find(crontab, 'full wal-e backup', 'postgres')
    expect(e.to_h).to eq(name: 'full wal-e backup', user: 'postgres', minute: '0', hour: '1', day: '*', month: '*',
                         weekday: '0', time: nil, command: '/opt/wal-e/bin/backup.sh >> /var/log/wal-e.log 2>&1',
                         environment: { 'MAILTO' => 'dba@example.org', 'PATH' => '/usr/bin:/bin',
                                        'AWS_REGION' => 'eu-west-1' })
  end

  it 'reads @ entries' do
    text = "# Chef Name: full wal-e backup\n@daily /opt/wal-e/bin/backup.sh\n"
    e = described_class.find(text, 'full wal-e backup', 'root')
    expect([e.time, e.command, e.user]).to eq(['daily', '/opt/wal-e/bin/backup.sh', 'root'])
  end

  it 'finds nothing when the entry is absent' do
    expect(described_class.find("5 5 * * * /bin/true\n", 'full wal-e backup', 'postgres')).to be_nil
    expect(described_class.find('', 'full wal-e backup', 'postgres')).to be_nil
  end

  it 'round-trips an entry through the saved JSON' do
    e = described_class.find(crontab, 'full wal-e backup', 'postgres')
    expect(described_class.load(described_class.dump(e))).to eq(e)
  end

  describe '.restore_properties' do
    let(:saved) { described_class.find(crontab, 'full wal-e backup', 'postgres') }

    it 'restores the saved entry exactly when the attributes set no schedule' do
      props = described_class.restore_properties(saved: saved, schedule: nil, command: '/x', user: 'u')
      expect(props).to eq('command' => '/opt/wal-e/bin/backup.sh >> /var/log/wal-e.log 2>&1', 'user' => 'postgres',
                          'minute' => '0', 'hour' => '1', 'day' => '*', 'month' => '*', 'weekday' => '0',
                          'mailto' => 'dba@example.org', 'path' => '/usr/bin:/bin',
                          'environment' => { 'AWS_REGION' => 'eu-west-1' })
    end

    it 'takes the schedule from the attributes when they set one' do
      props = described_class.restore_properties(saved: saved, schedule: '30 2 * * 1', command: '/x', user: 'u')
      expect(props.values_at('minute', 'hour', 'weekday')).to eq(%w[30 2 1])
    end

    it 'falls back to the attributes and walden\'s default schedule without a saved entry' do
      props = described_class.restore_properties(saved: nil, schedule: nil, command: '/opt/wal-e/bin/backup.sh',
                                                 user: 'postgres')
      expect(props).to eq('command' => '/opt/wal-e/bin/backup.sh', 'user' => 'postgres', 'minute' => '0',
                          'hour' => '0', 'day' => '*', 'month' => '*', 'weekday' => '*')
    end

    it 'restores an @ entry as Chef\'s time property' do
      at = described_class.find("# Chef Name: n\n@weekly /b\n", 'n', 'postgres')
      props = described_class.restore_properties(saved: at, schedule: nil, command: '/x', user: 'u')
      expect(props).to eq('command' => '/b', 'user' => 'postgres', 'time' => 'weekly')
    end
  end
end
